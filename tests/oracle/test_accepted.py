"""What a cleared request settles with (oracle.accepted): worked by hand."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from oracle.accepted import AllocationUnknown, settled_commitments
from protocol.clearing import Acceptance, Allocation
from protocol.requests import FlexRequest, PostedAllocation

A, B, C, D = ("0x" + c * 40 for c in "abcd")
SITE_A, SITE_C, SITE_D = ("0x" + c * 40 for c in "123")
SITES = {A: SITE_A, B: SITE_A, C: SITE_C, D: SITE_D}


@dataclass
class Stored:
    device: str
    watts: int


def request(gate: int | None, allocation: Allocation | None = None, budget: int = 10**9) -> FlexRequest:
    posted = None if allocation is None else PostedAllocation(allocation.root(), allocation.accepted_w,
                                                              allocation.clearing_price)
    return FlexRequest(1, 4, 3_600, 7_200, 3_000, 200_000, "0x" + "ee" * 20, max_budget=budget, gate_closure=gate,
                       allocation=posted)


ALLOCATION = Allocation(1, 80_000, 3_300, 3_300, 1_000, (Acceptance(A, SITE_A, 2_000), Acceptance(B, SITE_A, 1_300)),
                        (SITE_C,))
STORED = [Stored(A, 2_500), Stored(B, 2_000), Stored(C, 1_500), Stored(D, 900)]


def test_a_request_without_a_gate_lead_is_a_fixed_price_call():
    settled, commitments = settled_commitments(request(None), STORED, None, SITES.get)
    assert settled.price_per_kwh == 200_000 and commitments == STORED


def test_a_cleared_request_without_an_allocation_settles_nothing():
    settled, commitments = settled_commitments(request(3_000), STORED, None, SITES.get)
    assert commitments == [] and settled.price_per_kwh == 200_000


def test_accepted_devices_at_their_acceptance_control_sites_at_their_offer_others_not_at_all():
    # The allocation can earn 3,300 W x 1 h x 0.08 / kWh = 3.3 kWh x 80,000 = 264,000 base units.
    settled, commitments = settled_commitments(request(3_000, ALLOCATION), STORED, ALLOCATION, SITES.get)
    assert [(c.device, c.watts) for c in commitments] == [(A, 2_000), (B, 1_300), (C, 1_500)]
    assert settled.price_per_kwh == 80_000 and settled.max_budget == 264_000
    low_budget, _ = settled_commitments(request(3_000, ALLOCATION, budget=1_000), STORED, ALLOCATION, SITES.get)
    assert low_budget.max_budget == 1_000


def test_an_allocation_that_is_not_the_posted_one_is_refused():
    other = Allocation(1, 80_000, 3_300, 3_300, 1_000, (Acceptance(A, SITE_A, 3_300),), ())
    with pytest.raises(AllocationUnknown, match="no verified allocation"):
        settled_commitments(request(3_000, ALLOCATION), STORED, other, SITES.get)
    with pytest.raises(AllocationUnknown):
        settled_commitments(request(3_000, ALLOCATION), STORED, None, SITES.get)
