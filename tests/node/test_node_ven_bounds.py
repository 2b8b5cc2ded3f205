"""The node's VEN against a VTN that misbehaves, over real HTTP (a small app on loopback): an
oversized answer, one that is not JSON, a collection that is not a list, a refused token and an
event that does not validate are each logged and skipped; the poll never raises, and the next good
answer is followed."""

from __future__ import annotations

import logging
import sqlite3

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from uvicorn_server import ServedApps

from node.ven import Ven, VenClient
from node.ven_settings import OpenAdrConfig

START = "2026-12-03T19:00:00Z"
GOOD = {"id": "ok-1", "programID": "p-1", "intervalPeriod": {"start": START, "duration": "PT15M"},
        "intervals": [{"id": 0, "payloads": [{"type": "DISPATCH_SETPOINT_RELATIVE", "values": [-2.5]}]}]}


class Planner:
    """Stands in for the dispatcher's utility side: records what the VEN plans (the dispatcher's own
    tests cover applying it)."""

    def __init__(self) -> None:
        self.planned: list[tuple[str, str, list]] = []

    def on_utility_event(self, event_id: str, program: str, windows: list) -> int:
        self.planned.append((event_id, program, windows))
        return len(windows)

    def utility_windows(self) -> list[dict]:
        return []


@pytest.fixture()
def misbehaving(tmp_path):
    mode = {"events": "good", "token": "good"}
    app = FastAPI()

    @app.get("/auth/server")
    def server(request: Request) -> dict:
        return {"tokenURL": f"{request.base_url}auth/token"}

    @app.post("/auth/token")
    def token():
        if mode["token"] == "refused":
            return JSONResponse({"error": "invalid_client", "error_description": "wrong secret"}, status_code=401)
        return {"access_token": "t", "token_type": "Bearer", "expires_in": 3600}

    @app.get("/vens")
    def vens() -> list:
        return [{"id": "v-1", "venName": "node-1"}]

    @app.get("/resources")
    def resources() -> list:
        return [{"id": "r-1", "resourceName": "site", "venID": "v-1"}]

    @app.get("/events")
    def events():
        if mode["events"] == "huge":
            return [GOOD] * 20_000
        if mode["events"] == "text":
            return PlainTextResponse("<html>maintenance</html>")
        if mode["events"] == "object":
            return {"events": [GOOD]}
        if mode["events"] == "mixed":
            return [{"id": "bad-1", "programID": "p-1", "intervals": "none"}, GOOD]
        return [GOOD]

    served = ServedApps()
    base = served(app)
    config = OpenAdrConfig(url=base, client_id="node-1", client_secret="s", program_id="p-1",
                           max_response_bytes=65_536)
    planner = Planner()
    ven = Ven(VenClient(config), planner, None, [], 900, lambda: 0.0, lambda s, e: 0,
              sqlite3.connect(str(tmp_path / "ven.sqlite")))
    yield mode, ven, planner
    ven.client.close()
    served.stop_all()


@pytest.mark.parametrize("events, expected", [
    ("huge", "larger than 65536 bytes"), ("text", "not JSON"), ("object", "must be a JSON list")])
def test_a_bad_answer_skips_the_poll(misbehaving, caplog, events, expected):
    mode, ven, planner = misbehaving
    mode["events"] = events
    with caplog.at_level(logging.WARNING, logger="negawatt.node.ven"):
        assert ven.poll() == 0
    assert planner.planned == []
    assert any(expected in r.getMessage() and "poll skipped" in r.getMessage() for r in caplog.records)
    mode["events"] = "good"
    assert ven.poll() == 1
    assert planner.planned == [("ok-1", "p-1", [(0, 1_796_324_400, 1_796_325_300, 2_500)])]


def test_a_refused_token_and_an_invalid_event_are_logged(misbehaving, caplog):
    mode, ven, planner = misbehaving
    mode["token"] = "refused"
    with caplog.at_level(logging.WARNING, logger="negawatt.node.ven"):
        assert ven.poll() == 0
        assert any("refused client 'node-1'" in r.getMessage() for r in caplog.records)
        mode["token"], mode["events"] = "good", "mixed"
        assert ven.poll() == 1
    assert any("event bad-1 skipped: it does not validate" in r.getMessage() for r in caplog.records)
    assert [p[0] for p in planner.planned] == ["ok-1"]


def test_a_broken_event_is_warned_about_once(misbehaving, caplog):
    mode, ven, planner = misbehaving
    mode["events"] = "mixed"
    with caplog.at_level(logging.WARNING, logger="negawatt.node.ven"):
        ven.poll()
        ven.poll()
    assert sum("event bad-1 skipped" in r.getMessage() for r in caplog.records) == 1
    assert len(planner.planned) == 2  # the good event is planned at each poll (the dispatcher ignores known ones)
