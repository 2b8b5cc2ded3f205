"""/v1/baseline-rules says how many like-days a device needs, and the settlement's own baseline and
quality gate agree: one day fewer is ineligible for want of history, that many is not."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

from fastapi import FastAPI
from fastapi.testclient import TestClient

from oracle.baseline_rules_api import add_baseline_rules_route, history_needs
from oracle.baselines import BaselineSpec, compute_device_baseline
from oracle.epoch import OracleEconomics
from oracle.settlement import SettlementParams

H = 3_600
EVENT_DAY = date(2026, 3, 11)  # a Wednesday


def _ts(day: date, hour: int) -> int:
    return int(datetime(day.year, day.month, day.day, hour, tzinfo=timezone.utc).timestamp())


def _weekdays_before(day: date, n: int) -> list[date]:
    out, d = [], day
    while len(out) < n:
        d -= timedelta(days=1)
        if d.weekday() < 5:
            out.append(d)
    return out


def _history_reasons(spec: BaselineSpec, weekdays: int) -> set[str]:
    """The reasons the reference engine gives a steady device with `weekdays` prior weekdays of data."""
    readings = {}
    for day in _weekdays_before(EVENT_DAY, weekdays) + [EVENT_DAY]:
        for hour in range(24):
            readings[_ts(day, hour)] = 500 + hour
    result = compute_device_baseline(spec, readings, _ts(EVENT_DAY, 18), _ts(EVENT_DAY, 19))
    return {r for r in result.reasons if r.startswith("insufficient_history")}


def test_the_published_days_are_exactly_what_the_settlement_needs():
    for spec in (BaselineSpec(method="caiso-10in10", interval_seconds=H, min_days=4, quality_days=5),
                 BaselineSpec(method="caiso-10in10", interval_seconds=H)):
        needed = history_needs(spec)["historyDaysNeeded"]["weekday"]
        assert _history_reasons(spec, needed - 1), f"{needed - 1} weekdays should not be enough"
        assert not _history_reasons(spec, needed), f"{needed} weekdays should be enough"


def test_the_route_serves_the_default_and_each_zone_program():
    default = BaselineSpec(method="caiso-10in10", interval_seconds=900, min_days=4, quality_days=5)
    zone = BaselineSpec(method="high-x-of-y", interval_seconds=900, x=4, y=5)
    params = SettlementParams(fee_account="0x" + "fe" * 20, protocol_token="0x" + "aa" * 20)
    economics = OracleEconomics(params=params, baseline=default, zone_methods={7: zone})
    app = FastAPI()
    add_baseline_rules_route(app, economics)
    body = TestClient(app).get("/v1/baseline-rules").json()
    assert body["method"] == "caiso-10in10" and body["historyDaysNeeded"] == {"weekday": 6, "weekend": 6}
    assert body["zones"]["7"] == history_needs(zone)
