"""Why a device cannot earn yet (node.eligibility): the usable days of history it has, counted from
the readings it signed (a real outbox), against the days the oracles publish they need, with the
date it will have enough; the rule read over real HTTP, strictest oracle and zone program first;
and each warning logged once."""

from __future__ import annotations

import json
import logging
import threading
from datetime import date, datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from eth_account import Account

from node.dispatch import fetch_json
from node.eligibility import (EarningWarning, HistoryRule, WarningLog, bond_warning, complete_days, enough_on,
                              fetch_rule, history_warning, registration_warning)
from node.metering import MeteredDevice, enqueue_history
from node.outbox import Outbox

INTERVAL = 900
REGISTRY = "0x" + "11" * 20


def utc(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp())


def metered(outbox: Outbox, start: str, end: str) -> str:
    """A device with every interval from `start` to `end` signed into the outbox."""
    account = Account.create()
    count = (utc(end) - utc(start)) // INTERVAL
    enqueue_history(outbox, MeteredDevice(account.address, bytes(account.key), None), utc(start), [50] * count,
                    INTERVAL, 31337, REGISTRY, ["http://127.0.0.1:9"])
    return account.address


def test_history_is_counted_per_day_type_against_the_published_rule(tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite")
    # Friday 6 June 2025 00:00 to Wednesday 11 June 06:00: Fri, Mon, Tue complete weekdays, Sat and Sun
    device = metered(outbox, "2025-06-06T00:00:00", "2025-06-11T06:00:00")
    now = utc("2025-06-11T12:00:00")
    assert complete_days(outbox, device, now, 45) == [date(2025, 6, d) for d in (6, 7, 8, 9, 10)]

    warning = history_warning(outbox, device, now, HistoryRule(weekday=6, weekend=4, lookback_days=45,
                                                               method="caiso-10in10"))
    assert warning is not None and warning.code == "insufficient_history" and warning.device == device
    # three more weekdays (Wed 11 to Fri 13: today was metered from midnight) -> from Saturday 14;
    # two more weekend days (14, 15) -> from Monday 16
    assert "3 of the 6 weekdays a weekday event needs (enough from 2025-06-14)" in warning.message
    assert "2 of the 4 weekend days a weekend event needs (enough from 2025-06-16)" in warning.message
    assert "caiso-10in10" in warning.message and warning.until == "2025-06-16"

    assert history_warning(outbox, device, now, HistoryRule(3, 2, 45)) is None  # has enough of both
    assert history_warning(outbox, device, now, None) is None  # complete days, and no published rule
    # a look-back of 3 days sees only Mon and Tue (and Sunday)
    short = history_warning(outbox, device, now, HistoryRule(3, 1, 3))
    assert short is not None and "2 of the 3 weekdays" in short.message and "weekend" not in short.message


def test_a_device_started_today_counts_from_tomorrow_and_one_without_a_day_is_warned(tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite")
    late = metered(outbox, "2025-06-11T09:00:00", "2025-06-11T12:00:00")  # started on Wednesday morning
    now = utc("2025-06-11T12:00:00")
    warning = history_warning(outbox, late, now, HistoryRule(weekday=2, weekend=0, lookback_days=45))
    assert warning is not None and "0 of the 2 weekdays" in warning.message
    assert warning.until == "2025-06-14"  # Thursday and Friday complete: from Saturday
    unknown = history_warning(outbox, late, now, None)
    assert unknown is not None and unknown.message.startswith("no complete day of readings yet")
    assert enough_on(0, 1, True, date(2025, 6, 11)) == date(2025, 6, 15)  # Saturday 14 -> from Sunday
    assert enough_on(5, 3, False, date(2025, 6, 11)) == date(2025, 6, 11)


def test_registration_and_bond_warnings():
    assert registration_warning("0xD", True, True) is None
    assert registration_warning("0xD", False, False).code == "not_registered"
    assert registration_warning("0xD", True, False).code == "inactive"
    assert bond_warning(10**18, 10**18, 10_000, "NEGA", 18) is None
    bond = bond_warning(5 * 10**17, 1_040 * 10**18, 10_400, "NEGA", 18)
    assert bond.code == "bond_insufficient" and bond.device is None
    assert "free bond 0.5 NEGA is below the 1040 NEGA that commitments of 10400 W need" in bond.message


class _Rules(BaseHTTPRequestHandler):
    body: object = None

    def do_GET(self):  # noqa: N802 (http.server's name)
        if self.path != "/v1/baseline-rules" or self.body is None:
            self.send_error(404)
            return
        raw = json.dumps(self.body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


@pytest.fixture
def rule_servers():
    """Start HTTP servers that publish the given baseline-rules bodies (None: 404); their URLs."""
    servers = []

    def start(*bodies):
        urls = []
        for body in bodies:
            server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Rules,), {"body": body}))
            threading.Thread(target=server.serve_forever, daemon=True).start()
            servers.append(server)
            urls.append(f"http://127.0.0.1:{server.server_address[1]}")
        return urls

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_the_strictest_published_rule_is_used_and_a_zone_program_wins(rule_servers):
    first = {"method": "caiso-10in10", "lookbackDays": 45, "historyDaysNeeded": {"weekday": 12, "weekend": 6},
             "zones": {"3": {"method": "high-x-of-y", "lookbackDays": 30, "historyDaysNeeded": {"weekday": 7,
                                                                                            "weekend": 7}}}}
    second = {"method": "caiso-10in10", "lookbackDays": 40, "historyDaysNeeded": {"weekday": 6, "weekend": 8}}
    urls = rule_servers(first, second, None, {"historyDaysNeeded": {"weekday": -1, "weekend": "x"}})
    assert fetch_rule(urls, 1, fetch_json) == HistoryRule(12, 8, 40, "caiso-10in10")
    assert fetch_rule(urls, 3, fetch_json) == HistoryRule(7, 8, 30, "high-x-of-y")
    assert fetch_rule(urls[2:], 1, fetch_json) is None  # a 404 and an invalid body publish nothing
    assert fetch_rule(["http://127.0.0.1:9"], 1, fetch_json) is None  # unreachable


def test_each_warning_is_logged_once_and_when_it_clears(caplog):
    log = logging.getLogger("test.eligibility")
    warnings = WarningLog(log)
    history = EarningWarning("insufficient_history", "not enough history", "0xD", "2025-06-16")
    with caplog.at_level(logging.INFO, logger="test.eligibility"):
        for _ in range(3):
            warnings.update([history])
        assert [r.getMessage() for r in caplog.records] == [
            "0xD cannot earn yet (insufficient_history): not enough history"]
        warnings.update([])
        warnings.update([])
    assert [r.getMessage() for r in caplog.records][1:] == ["0xD: insufficient_history no longer holds"]
