"""The allocation document: its round trip, and every way it can fail to match the posted allocation."""

from __future__ import annotations

import pytest
from eth_account import Account
from pydantic import ValidationError

from protocol.allocation_document import AllocationDocument, AllocationMismatch
from protocol.clearing import Acceptance, Allocation

DEVICES = sorted((Account.create().address for _ in range(3)), key=str.lower)
SITE = Account.create().address


def allocation() -> Allocation:
    accepted = tuple(Acceptance(d, SITE, w) for d, w in zip(DEVICES, (1_000, 2_000, 500)))
    return Allocation(9, clearing_price=120_000, accepted_w=3_500, cap_w=4_000, margin_bps=1_000, accepted=accepted,
                      control_sites=())


def posted() -> tuple[int, str, int, int]:
    a = allocation()
    return a.request_id, "0x" + a.root().hex(), a.accepted_w, a.clearing_price


def test_round_trip_keeps_the_root():
    document = AllocationDocument.of(allocation(), offers=6)
    again = AllocationDocument.model_validate(document.as_json())
    assert again.verify(*posted()).root() == allocation().root()
    assert again.offers == 6


@pytest.mark.parametrize("change, message", [
    (lambda d: d["accepted"][0].update(watts=1_001) or d.update(acceptedW=3_501), "is not the root of its leaves"),
    (lambda d: d.update(requestId=10), "is for request 10"),
    (lambda d: d.update(clearingPrice=120_001), "is not the root of its leaves"),  # the price is in every leaf
    (lambda d: d.update(acceptedW=3_400), "not the sum of the acceptances"),
])
def test_a_changed_document_does_not_match(change, message):
    body = AllocationDocument.of(allocation(), offers=6).as_json()
    change(body)
    with pytest.raises(AllocationMismatch, match=message):
        AllocationDocument.model_validate(body).verify(*posted())


def test_a_consistent_document_for_another_root_does_not_match():
    other = Allocation(9, 120_000, 3_000, 4_000, 1_000, (Acceptance(DEVICES[0], SITE, 3_000),), ())
    with pytest.raises(AllocationMismatch, match="is not the posted root"):
        AllocationDocument.of(other, 1).verify(*posted())


@pytest.mark.parametrize("field, value", [
    ("acceptedW", -1), ("clearingPrice", "120000"), ("marginBps", 5_001), ("root", "0x12"), ("extra", 1),
])
def test_malformed_fields_are_refused(field, value):
    body = AllocationDocument.of(allocation(), offers=6).as_json()
    body[field] = value
    with pytest.raises(ValidationError):
        AllocationDocument.model_validate(body)


def test_a_bad_address_and_zero_watts_are_refused():
    body = AllocationDocument.of(allocation(), offers=6).as_json()
    body["accepted"][0]["device"] = "0x" + "zz" * 20
    with pytest.raises(ValidationError):
        AllocationDocument.model_validate(body)
    body = AllocationDocument.of(allocation(), offers=6).as_json()
    body["accepted"][0]["watts"] = 0
    with pytest.raises(ValidationError):
        AllocationDocument.model_validate(body)
