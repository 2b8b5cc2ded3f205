"""The program and event mapping rules of vtn.market, as pure functions: the zone and ceiling a
programme gives, the one request an event becomes, and every shape refused before anything is sent."""

from __future__ import annotations

import pytest

from vtn.market import MarketError, Order, event_order, program_terms
from vtn.models import EventIn

ATTRS = [{"type": "NEGAWATT_ZONE", "values": [3]}, {"type": "NEGAWATT_PRICE_CEILING", "values": ["0.25"]},
         {"type": "NEGAWATT_REFERENCE_IMPORT_KW", "values": [120]}]
START = "2026-12-03T18:00:00Z"


def _event(intervals, period=True, **extra) -> EventIn:
    body = {"programID": "p", "intervals": intervals, **extra}
    if period:
        body["intervalPeriod"] = {"start": START, "duration": "PT15M"}
    return EventIn.model_validate(body)


def _interval(n, kind="DISPATCH_SETPOINT_RELATIVE", value=-4):
    return {"id": n, "payloads": [{"type": kind, "values": [value]}]}


def test_program_terms_in_base_units():
    terms = program_terms(ATTRS, 6)
    assert (terms.zone, terms.price_per_kwh, terms.reference_import_w) == (3, 250_000, 120_000)
    with pytest.raises(MarketError, match="NEGAWATT_ZONE"):
        program_terms(ATTRS[1:], 6)
    with pytest.raises(MarketError, match="more decimals"):
        program_terms([ATTRS[0], {"type": "NEGAWATT_PRICE_CEILING", "values": ["0.0000001"]}], 6)


def test_contiguous_intervals_become_one_request():
    order = event_order(_event([_interval(n) for n in range(4)]), program_terms(ATTRS, 6))
    start = 1796320800
    assert order == Order(3, start, start + 3600, 4_000, 250_000)
    assert order.budget == 1_000_000  # 4 kW x 1 h x 0.25


def test_an_import_limit_is_a_reduction_from_the_reference():
    order = event_order(_event([_interval(0, "IMPORT_CAPACITY_LIMIT", 100)]), program_terms(ATTRS, 6))
    assert order.target_w == 20_000


@pytest.mark.parametrize("event, reason", [
    (_event([]), "no intervals"),
    (_event([_interval(0)], period=False), "no interval period"),
    (_event([_interval(0, "PRICE", 1)]), "unsupported payload"),
    (_event([_interval(0), _interval(1, value=-5)]), "same reduction"),
    (_event([_interval(0), _interval(1, "IMPORT_CAPACITY_LIMIT", 116)]), "mix"),
    (_event([_interval(0, value=3)]), "no reduction"),
    (_event([{"id": 0, "intervalPeriod": {"start": START, "duration": "PT15M"},
              "payloads": [{"type": "DISPATCH_SETPOINT_RELATIVE", "values": [-4]}]},
             {"id": 1, "intervalPeriod": {"start": "2026-12-03T19:00:00Z", "duration": "PT15M"},
              "payloads": [{"type": "DISPATCH_SETPOINT_RELATIVE", "values": [-4]}]}]), "contiguous"),
])
def test_unsupported_events_are_refused(event, reason):
    with pytest.raises(MarketError, match=reason):
        event_order(event, program_terms(ATTRS, 6))


def test_an_import_limit_needs_the_reference():
    with pytest.raises(MarketError, match="REFERENCE_IMPORT"):
        event_order(_event([_interval(0, "IMPORT_CAPACITY_LIMIT", 10)]), program_terms(ATTRS[:2], 6))
