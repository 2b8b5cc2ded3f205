"""protocol.http_limits over real HTTP (uvicorn on loopback, raw sockets and httpx):

- a 50 MB body, declared or streamed, gets a 413 problem without the app reading it, on a minimal
  app and on the oracle's ingest app (the app the oracle serves its proposals on too);
- a client that sends half a request line and then nothing is disconnected after the request-head
  timeout, while other clients are served; the same after a keep-alive response;
- an oversized request head gets 431; past the connection limit new requests get 503.
"""

from __future__ import annotations

import json
import socket
import threading
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI, Request
from uvicorn_server import ServedApps, parse_answer, post_chunked, post_declared

from protocol.http_limits import BodyLimitMiddleware, HttpLimits, header_deadline_protocol
from protocol.problems import ProblemNamespace

FIFTY_MB = 50 * 1024 * 1024
CAP = 4_096


def _app() -> tuple[FastAPI, dict[str, int]]:
    app = FastAPI()
    seen = {"started": 0, "read": 0}

    @app.post("/echo")
    async def echo(request: Request):
        seen["started"] += 1
        body = await request.body()
        seen["read"] += 1
        return {"bytes": len(body)}

    @app.get("/hi")
    async def hi():
        return {"hi": True}

    app.add_middleware(BodyLimitMiddleware, max_bytes=CAP)
    return app, seen


@pytest.fixture
def served():
    """Serve an app with the given HttpLimits fields for this test; returns its base URL."""
    apps = ServedApps()
    yield lambda app, **limits: apps(app, limits=HttpLimits(**limits))
    apps.stop_all()


def _problem(raw: bytes, status: int = 413) -> dict:
    code, headers, body = parse_answer(raw)
    assert code == status, raw[:300]
    assert headers["content-type"] == "application/problem+json" and headers["connection"] == "close"
    return json.loads(body[: int(headers["content-length"])])


def test_a_declared_50_mb_body_is_refused_before_the_app_runs(served):
    app, seen = _app()
    url = served(app)
    problem = _problem(post_declared(url, "/echo", FIFTY_MB))  # only the head was sent
    assert problem["code"] == "too_large" and f"{FIFTY_MB} bytes; this server accepts at most {CAP}" in problem["detail"]
    assert problem["type"] == ProblemNamespace.API.value.format(code="too_large")
    assert seen == {"started": 0, "read": 0}


def test_a_streamed_50_mb_body_is_cut_off_at_the_cap(served):
    app, seen = _app()
    url = served(app)
    raw, sent = post_chunked(url, "/echo", FIFTY_MB)
    assert "passed 4096 bytes" in _problem(raw)["detail"]
    assert sent < FIFTY_MB // 4, f"{sent} bytes went in before the answer"
    assert seen["read"] == 0  # the app never got the whole body


def test_an_app_that_ignores_a_streamed_body_closes_the_connection_instead_of_draining_it(served):
    app, _ = _app()
    url = served(app)
    raw, sent = post_chunked(url, "/hi", FIFTY_MB, method="GET")
    status, headers, _ = parse_answer(raw)
    assert status == 200 and headers["connection"] == "close"
    assert sent < FIFTY_MB // 4


def test_bodies_within_the_cap_pass_untouched(served):
    app, seen = _app()
    url = served(app)
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.post("/echo", content=b"x" * CAP).json() == {"bytes": CAP}
        assert client.post("/echo", content=iter([b"x" * 1_000] * 4)).json() == {"bytes": 4_000}
        assert client.post("/echo", content=b"x" * (CAP + 1)).status_code == 413
        assert client.post("/echo", content=iter([b"x" * 1_000] * 5)).status_code == 413
    assert seen["read"] == 2


def test_a_slow_request_head_is_disconnected_while_others_are_served(served):
    app, _ = _app()
    url = served(app, header_timeout=1.0)
    host, port = url.removeprefix("http://").split(":")
    slow = socket.create_connection((host, int(port)))
    slow.sendall(b"GET /h")  # half a request line, then nothing
    slow.settimeout(20)  # a guard so a broken server fails the test instead of hanging it
    with httpx.Client(base_url=url, timeout=30) as client:
        assert client.get("/hi").status_code == 200  # served while the slow connection is held open
    try:
        assert slow.recv(1024) == b"", "the server answered a request that was never completed"
    except socket.timeout:
        pytest.fail("the slow connection was never closed")
    finally:
        slow.close()


def test_a_head_completed_in_time_is_served_and_the_next_one_gets_the_same_deadline(served):
    import time

    app, _ = _app()
    url = served(app, header_timeout=2.0)
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.settimeout(20)
        sock.sendall(b"GET /hi HT")
        time.sleep(0.1)
        sock.sendall(b"TP/1.1\r\nHost: x\r\n\r\n")
        first = sock.recv(4096)
        assert first.startswith(b"HTTP/1.1 200"), first
        sock.sendall(b"GET /hi HTTP/1.1\r\nHo")  # keep-alive: the next head trickles in and stops
        try:
            assert sock.recv(1024) == b""
        except socket.timeout:
            pytest.fail("a stalled second request head kept the connection")


def test_an_oversized_request_head_gets_431(served):
    app, _ = _app()
    url = served(app, max_head_bytes=8_192)
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        sock.settimeout(20)
        sock.sendall(b"GET /hi HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 20_000)
        assert sock.recv(4096).startswith(b"HTTP/1.1 431")


def test_past_the_connection_limit_new_requests_get_503(served):
    app, _ = _app()
    url = served(app, max_connections=3)
    host, port = url.removeprefix("http://").split(":")
    idle = [socket.create_connection((host, int(port))) for _ in range(2)]
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get("/hi").status_code == 503  # 3 open connections, this one included
    finally:
        for sock in idle:
            sock.close()


def test_the_head_deadline_works_on_both_uvicorn_protocols():
    from uvicorn.protocols.http.h11_impl import H11Protocol
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    limits = HttpLimits(header_timeout=3.5, max_head_bytes=2_048)
    for name, base in (("h11", H11Protocol), ("httptools", HttpToolsProtocol)):
        protocol = header_deadline_protocol(limits, name)
        assert issubclass(protocol, base) and protocol.header_timeout == 3.5 and protocol.max_head_bytes == 2_048
    with pytest.raises(ValueError):
        header_deadline_protocol(limits, "zttp")


def test_h11_servers_disconnect_a_slow_head_too():
    import time

    from protocol.http_limits import limited_server

    app, _ = _app()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = limited_server(app, HttpLimits(header_timeout=1.0), http="h11", log_level="warning")
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        with socket.create_connection(("127.0.0.1", port)) as slow:
            slow.settimeout(20)
            slow.sendall(b"POST /echo HTTP/1.1\r\nHost")
            assert slow.recv(1024) == b""
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def test_the_oracle_ingest_app_refuses_50_mb_bodies(served):
    """The oracle serves its ingest, attestation (POST /v1/proposals) and publication routes on the
    app create_ingest_app builds; its body cap answers in the ingest's own problem namespace."""
    from oracle.ingest_api import create_ingest_app

    url = served(create_ingest_app(SimpleNamespace(chain_view=None), max_body_bytes=64 * 1024))
    for path in ("/v1/meter-batches", "/v1/commitments", "/v1/proposals"):
        problem = _problem(post_declared(url, path, FIFTY_MB))
        assert problem["code"] == "payload_too_large"
        assert problem["type"] == ProblemNamespace.INGEST.value.format(code="payload_too_large")
    raw, sent = post_chunked(url, "/v1/meter-batches", FIFTY_MB)
    assert _problem(raw)["code"] == "payload_too_large" and sent < FIFTY_MB // 4
