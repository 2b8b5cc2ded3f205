"""Polling until something happened, for tests that wait on other processes, threads or the chain
(a module beside tests/uvicorn_server.py; tests/ is on sys.path)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition", step: float = 0.1) -> Any:
    """Poll `predicate` every `step` seconds until it returns something truthy, and return that;
    an AssertionError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(step)
