"""Helpers shared by the driver tests: a background asyncio loop for the simulated peers and polling
with a deadline (no timed assertions). The fixtures are in conftest.py."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

from waiting import wait_for as poll  # tests/waiting.py (tests/ is on sys.path)


class PeerLoop:
    """An asyncio loop in its own thread, where the simulated peers live (as on another machine)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="peers", daemon=True)
        self.thread.start()

    def run(self, coro, timeout: float = 20.0) -> Any:
        """Run `coro` on the peers' loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, function: Callable[[], Any]) -> Any:
        """Call `function` on the peers' loop (their state is only touched there)."""
        async def wrapper():
            return function()
        return self.run(wrapper())

    def close(self) -> None:
        """Cancel what still runs on the loop, then stop and close it."""
        async def drain():
            tasks = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        self.run(drain())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
    """Poll `predicate` every 50 ms until it returns something truthy; fail with `what` after `timeout` seconds."""
    return poll(predicate, timeout, what, step=0.05)
