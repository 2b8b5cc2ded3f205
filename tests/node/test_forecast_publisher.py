"""The node's forecast publisher (node.forecast) against a real HTTP server on loopback: it signs 24
hours of the site's offers, delivers them, and when the server is down, failing or slow to know the
site, keeps the very same signed forecast and delivers it on a later call, across a node restart,
so nothing is lost; the sequence only grows, even when the state file is lost; a permanent refusal
is logged and dropped. The server is a small forecast receiver that checks signatures the way the
API does (protocol.forecast) and keeps each site's latest."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import pytest
import uvicorn
from eth_account import Account
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from uvicorn_server import serve

from node.forecast import ForecastPublisher, next_day_start
from protocol.forecast import Tranche, decode_forecast

KEY = "0x" + "6d" * 32
SITE = Account.from_key(KEY).address
CHAIN, REGISTRY, ZONE = 31337, "0x" + "5f" * 20, 3
H = 3_600
NOW = 1_780_000_000
DAY = next_day_start(NOW)


class Receiver:
    """What the server was sent and how it answers (`answer`: None to store, else a status and code)."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.latest: dict[str, dict] = {}
        self.answer: tuple[int, str] | None = None
        self.app = FastAPI()

        @self.app.post("/v1/forecasts")
        async def post(request: Request):
            body = await request.json()
            self.received.append(body)
            if self.answer is not None:
                status, code = self.answer
                return JSONResponse({"code": code, "detail": "as the test wants"}, status_code=status)
            forecast = decode_forecast(body)
            assert forecast.signer(CHAIN, REGISTRY) == forecast.site
            stored = self.latest.get(forecast.site)
            if stored is not None and stored["sequence"] >= forecast.sequence and stored != body:
                return JSONResponse({"code": "sequence_conflict", "detail": "stale"}, status_code=409)
            self.latest[forecast.site] = body
            return {"status": "stored"}


def offer_of(start: int, end: int) -> list[Tranche]:
    """The site's offer for an hour: 1,000 W at 120 plus, in the evening, 400 W at 300 (and a 0 W
    tranche the publisher leaves out)."""
    assert end - start == H
    hour = start // H % 24
    return [Tranche(1_000, 120), Tranche(400, 300)] if 17 <= hour < 21 else [Tranche(1_000, 120), Tranche(0, 5)]


def offers_of(windows: list[tuple[int, int]]) -> list[list[Tranche]]:
    """`offer_of` of each hour, as the publisher asks for a day at once."""
    return [offer_of(start, end) for start, end in windows]


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def publisher(url: str, state_path, clock: Clock, timeout: float = 2.0) -> ForecastPublisher:
    return ForecastPublisher(SITE, KEY, ZONE, CHAIN, REGISTRY, url, offers_of, clock, state_path, timeout=timeout)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve_on(app, port: int) -> tuple[uvicorn.Server, threading.Thread]:
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    return server, thread


def test_a_forecast_is_signed_for_the_next_day_and_delivered(tmp_path):
    receiver = Receiver()
    url, server, thread = serve(receiver.app)
    try:
        node = publisher(url, tmp_path / "state.json", Clock(NOW))
        assert node.publish() is True
        [sent] = receiver.received
        forecast = decode_forecast(sent)
        assert forecast.signer(CHAIN, REGISTRY) == SITE and (forecast.zone, forecast.start) == (ZONE, DAY)
        assert len(forecast.hours) == 24
        assert forecast.hours[0] == (Tranche(1_000, 120),)  # the 0 W tranche is left out
        assert forecast.hours[18] == (Tranche(1_000, 120), Tranche(400, 300))
        assert forecast.sequence >= NOW and node.pending is None
        assert node.publish() is True and len(receiver.received) == 1  # acknowledged: not sent again
        state = json.loads((tmp_path / "state.json").read_text())
        assert state == {"sequence": forecast.sequence, "pending": None, "acknowledged_start": DAY}
        assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no temporary file left behind
        node.close()
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def test_a_server_down_then_up_loses_nothing_even_across_a_restart(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="negawatt.node.forecast")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    clock = Clock(NOW)
    node = publisher(url, tmp_path / "state.json", clock, timeout=1.0)
    assert node.publish() is False  # nothing listens on the port
    kept = node.pending
    assert kept is not None and kept.start == DAY and kept.signer(CHAIN, REGISTRY) == SITE
    assert "kept for the next try" in caplog.text
    assert node.publish() is False and node.pending == kept and node.pending.sequence == kept.sequence
    node.close()

    receiver = Receiver()
    server, thread = serve_on(receiver.app, port)
    try:
        receiver.answer = (503, "indexer_lagging")
        restarted = publisher(url, tmp_path / "state.json", clock)  # the node restarts: the state file holds it
        assert restarted.pending == kept
        assert restarted.publish() is False and restarted.pending == kept  # a 5xx is retried
        receiver.answer = (403, "unknown_device")  # the API has not indexed the site yet
        assert restarted.publish() is False and restarted.pending == kept
        receiver.answer = None
        assert restarted.publish() is True
        delivered = decode_forecast(receiver.received[-1])
        assert delivered == kept and delivered.signature == kept.signature  # the very forecast built while down
        assert receiver.latest[SITE] == receiver.received[-1] and restarted.pending is None
        assert [decode_forecast(body).sequence for body in receiver.received] == [kept.sequence] * 3

        # the next day: a fresh forecast with a higher sequence supersedes a pending older one
        clock.now = NOW + 86_400
        receiver.answer = (500, "internal_error")
        assert restarted.publish() is False
        older = restarted.pending
        assert older.start == DAY + 86_400 and older.sequence > kept.sequence
        clock.now = NOW + 2 * 86_400
        receiver.answer = None
        assert restarted.publish() is True
        newest = decode_forecast(receiver.latest[SITE])
        assert newest.start == DAY + 2 * 86_400 and newest.sequence > older.sequence
        assert "superseded" in caplog.text
        restarted.close()
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def test_the_sequence_only_grows_and_a_permanent_refusal_is_dropped(tmp_path, caplog):
    receiver = Receiver()
    url, server, thread = serve(receiver.app)
    try:
        clock = Clock(NOW)
        node = publisher(url, tmp_path / "state.json", clock)
        sequences = [node.build(DAY).sequence for _ in range(3)]
        assert sequences == [NOW, NOW + 1, NOW + 2]  # at least the clock's seconds, then one more each time
        assert publisher(url, tmp_path / "state.json", clock).build(DAY).sequence == NOW + 3  # after a restart
        (tmp_path / "state.json").unlink()
        clock.now = NOW + 60
        assert publisher(url, tmp_path / "state.json", clock).build(DAY).sequence == NOW + 60  # state lost: clock
        (tmp_path / "state.json").write_text('{"sequence": "many", "pending": {"site": 1}}')
        clock.now = NOW + 61
        assert publisher(url, tmp_path / "state.json", clock).build(DAY).sequence == NOW + 61  # unreadable: clock
        with pytest.raises(ValueError, match="not a whole hour"):
            node.build(DAY + 5)

        caplog.set_level(logging.INFO, logger="negawatt.node.forecast")
        receiver.answer = (400, "bad_signature")
        dropped = publisher(url, tmp_path / "state.json", clock)
        assert dropped.publish() is False and dropped.pending is None
        assert "refused (400 bad_signature" in caplog.text and "dropped" in caplog.text
        node.close()
        dropped.close()
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def test_an_offer_with_three_tranches_is_refused_before_signing(tmp_path):
    node = ForecastPublisher(SITE, KEY, ZONE, CHAIN, REGISTRY, "http://127.0.0.1:9", lambda windows: [
        [Tranche(1, 1), Tranche(1, 2), Tranche(1, 3)] for _ in windows], Clock(NOW), tmp_path / "s.json")
    with pytest.raises(ValueError, match="3 tranches"):
        node.build(DAY)
    assert not (tmp_path / "s.json").exists()
    node.close()
