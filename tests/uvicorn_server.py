"""An ASGI app served for real by uvicorn on a loopback port in a thread (shared by the oracle and
API tests; a module, not a fixture, so both conftests and plain test modules can use it)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn


def serve(app: Any, timeout: float = 15.0) -> tuple[str, uvicorn.Server, threading.Thread]:
    """Run `app` with uvicorn on a free loopback port in a thread; returns (base URL, server, thread)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    return f"http://127.0.0.1:{port}", server, thread
