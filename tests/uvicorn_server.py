"""An ASGI app served for real by uvicorn on a loopback port in a thread (shared by the oracle and
API tests; a module, not a fixture, so both conftests and plain test modules can use it)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn


def serve(app: Any, timeout: float = 15.0, limits: Any = None) -> tuple[str, uvicorn.Server, threading.Thread]:
    """Run `app` with uvicorn on a free loopback port in a thread; returns (base URL, server, thread).
    With `limits` (a protocol.http_limits.HttpLimits), the server is protocol.http_limits.limited_server."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    if limits is None:
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    else:
        from protocol.http_limits import limited_server

        server = limited_server(app, limits, log_level="warning", lifespan="on")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    return f"http://127.0.0.1:{port}", server, thread


class ServedApps:
    """The apps one test serves (call it with an app, get its base URL); `stop_all` stops each one,
    lifespan shutdown included. The API, oracle and limits tests' fixtures all hand out one."""

    def __init__(self) -> None:
        self._running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def __call__(self, app: Any, limits: Any = None) -> str:
        url, server, thread = serve(app, limits=limits)
        self._running.append((server, thread))
        return url

    def stop_all(self) -> None:
        """Stop every app served so far (waiting up to 15 s for each)."""
        for server, thread in self._running:
            server.should_exit = True
            thread.join(timeout=15)
        self._running.clear()


# ---------------------------------------------------------------------- raw HTTP/1.1, for the limits tests


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").rstrip("/").rsplit(":", 1)
    return host, int(port)


def _read_answer(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (a reset after its answer is fine)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionResetError, TimeoutError, socket.timeout):
        pass
    return data


def post_declared(url: str, path: str, length: int, method: str = "POST", headers: str = "",
                  timeout: float = 15.0) -> bytes:
    """Send only a request head declaring a `length`-byte body, and return what the server answers
    without waiting for a byte of that body (a server that reads the body first never answers)."""
    with socket.create_connection(_address(url)) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {length}\r\n{headers}\r\n".encode())
        return _read_answer(sock, timeout)


def post_chunked(url: str, path: str, total: int, method: str = "POST", headers: str = "",
                 chunk: int = 64 * 1024, timeout: float = 15.0) -> tuple[bytes, int]:
    """Stream up to `total` body bytes (chunked), stopping as soon as the server answers or drops the
    connection; returns (the answer, body bytes sent)."""
    import select

    sent = 0
    piece = b"%x\r\n" % chunk + b"7" * chunk + b"\r\n"
    with socket.create_connection(_address(url)) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                     f"Transfer-Encoding: chunked\r\n{headers}\r\n".encode())
        try:
            while sent < total:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break
                sock.settimeout(timeout)
                sock.sendall(piece)
                sent += chunk
            else:
                sock.sendall(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        return _read_answer(sock, timeout), sent


def parse_answer(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, lower-cased headers, body) of a raw HTTP/1.1 answer."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and lines[0].startswith("HTTP/") else 0
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    return status, fields, body
