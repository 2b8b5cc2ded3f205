"""The one background asyncio loop that runs every real device driver's I/O.

The node's main loop is synchronous; drivers (Modbus, OCPP, MQTT clients and servers) are
asynchronous. They all share one daemon thread with one event loop, started the first time a real
driver needs it (a node with only simulated devices never starts it). The node's thread hands work
to the loop with `run(coro, timeout)` and waits for the answer, bounded by the timeout.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def loop() -> asyncio.AbstractEventLoop:
    """The drivers' event loop, started on first use in a daemon thread named `device-io`."""
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            new_loop = asyncio.new_event_loop()
            ready = threading.Event()

            def serve() -> None:
                asyncio.set_event_loop(new_loop)
                new_loop.call_soon(ready.set)
                new_loop.run_forever()

            threading.Thread(target=serve, name="device-io", daemon=True).start()
            ready.wait()
            _loop = new_loop
        return _loop


def submit(coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
    """Schedule `coro` on the drivers' loop; returns a thread-safe future."""
    return asyncio.run_coroutine_threadsafe(coro, loop())


def run(coro: Coroutine[Any, Any, T], timeout: float) -> T:
    """Run `coro` on the drivers' loop and wait at most `timeout` seconds for its result.

    On timeout the coroutine is cancelled and `TimeoutError` raised. Must not be called from the
    loop's own thread (it would wait for itself).
    """
    if in_loop_thread():
        raise RuntimeError("aioloop.run called from the device-io thread")
    future = submit(coro)
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise TimeoutError(f"no answer within {timeout:g} s") from None


def in_loop_thread() -> bool:
    """True when called from the drivers' loop thread."""
    try:
        return asyncio.get_running_loop() is _loop
    except RuntimeError:
        return False
