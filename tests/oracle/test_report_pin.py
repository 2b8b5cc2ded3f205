"""The oracle's report document, pinned byte for byte.

`data/report_v1.json` was written by the oracle before the report became a typed document
(commit a4e8252, `report_store.report_body` + `json.dumps(sort_keys=True)`), from the fixed inputs
below run through the real baseline engine and settlement. Every oracle hashes and serves these
bytes, so the typed document must reproduce them exactly, and read them back unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

from oracle.baselines import HIGH_X_OF_Y, BaselineSpec
from oracle.epoch import OracleEconomics, request_input
from oracle.report_store import report_document
from oracle.settlement import SettlementParams, settle_epoch
from protocol.report_document import ReportDocument

PINNED = Path(__file__).parent / "data" / "report_v1.json"
INTERVAL = 900
DAY = 86_400
EVENT_START = 1_700_000_000 // DAY * DAY + 18 * 3_600 + 40 * DAY
EVENT_END = EVENT_START + 3_600
DEVICES = ["0x" + "11" * 20, "0x" + "22" * 20, "0x" + "3a" * 20]
OWNERS = ["0x" + "01" * 20, "0x" + "02" * 20, "0x" + "03" * 20]
TOKEN = "0x" + "bb" * 20


def _readings() -> dict[str, dict[int, int]]:
    """35 days of deterministic history and a curtailed event hour per device (Wh per 15 min)."""
    out = {}
    for d, device in enumerate(DEVICES):
        series, t = {}, EVENT_START - 35 * DAY
        while t < EVENT_END:
            hour = (t % DAY) // 3_600
            wh = 300 + 40 * d + (120 if 17 <= hour <= 20 else 0) + ((t // INTERVAL) * 37 % 23)
            series[t] = wh // (2 + d) if EVENT_START <= t < EVENT_END else wh
            t += INTERVAL
        out[device] = series
    return out


def _pinned_inputs():
    request = SimpleNamespace(request_id=7, buyer="0x" + "b0" * 20, zone=1, start=EVENT_START, end=EVENT_END,
                              target_w=9_000, price_per_kwh=250_000, payment_token=TOKEN, max_budget=5 * 10**6,
                              holdout_bps=0, availability_price=0)
    # no holdout, no sites, no clearing: settled per device, as in version 1
    devices = {device: SimpleNamespace(address=device, owner=owner, kind=0, capacity_w=7_400, zone=1, active=True,
                                       site=None)
               for device, owner in zip(DEVICES, OWNERS)}
    commitments = [SimpleNamespace(device=device, watts=2_000 + 500 * i) for i, device in enumerate(DEVICES)]
    params = SettlementParams(fee_account="0x" + "fe" * 20, protocol_token="0x" + "aa" * 20, interval_seconds=INTERVAL)
    economics = OracleEconomics(params=params, baseline=BaselineSpec(HIGH_X_OF_Y, adjustment="ratio"))
    request_in, records = request_input(request, commitments, devices, _readings(), economics)
    settlement = settle_epoch(3, b"\x07" * 32, {(OWNERS[0], TOKEN): 1234}, [request_in], params,
                              emission_budget=10**24)
    return settlement, {7: records}


def test_the_document_reproduces_the_pinned_bytes():
    settlement, records = _pinned_inputs()
    document = report_document(b"\x42" * 32, settlement, records)
    assert document.canonical_json() == PINNED.read_text()


def test_the_pinned_bytes_read_back_unchanged():
    text = PINNED.read_text()
    document = ReportDocument.parse(text)
    assert document.canonical_json() == text
    assert document.as_json() == json.loads(text)
    assert document.requests[0].baselines[0].adjustment["kind"] == "ratio"
    settlement, _ = _pinned_inputs()
    assert document.computed_root() == settlement.report.rewards_root
    assert document.settlement_report() == settlement.report
