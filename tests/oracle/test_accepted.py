"""What a cleared request settles with (oracle.accepted): worked by hand."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from oracle.accepted import AllocationUnknown, overlaps, settled_commitments, taken_sites
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
    # The allocation can earn 3,300 W x 1 h x 0.08 / kWh = 3.3 kWh x 80,000 = 264,000 base units: the
    # chain's lowered escrow; the report keeps the deposit (its refund is the deposit less the payout).
    settled, commitments = settled_commitments(request(3_000, ALLOCATION), STORED, ALLOCATION, SITES.get)
    assert [(c.device, c.watts) for c in commitments] == [(A, 2_000), (B, 1_300), (C, 1_500)]
    assert settled.price_per_kwh == 80_000 and settled.max_budget == 10**9
    assert settled.payable_budget == 264_000
    low_budget, _ = settled_commitments(request(3_000, ALLOCATION, budget=1_000), STORED, ALLOCATION, SITES.get)
    assert low_budget.payable_budget == 1_000


def test_an_allocation_that_is_not_the_posted_one_is_refused():
    other = Allocation(1, 80_000, 3_300, 3_300, 1_000, (Acceptance(A, SITE_A, 3_300),), ())
    with pytest.raises(AllocationUnknown, match="no verified allocation"):
        settled_commitments(request(3_000, ALLOCATION), STORED, other, SITES.get)
    with pytest.raises(AllocationUnknown):
        settled_commitments(request(3_000, ALLOCATION), STORED, None, SITES.get)


# ---------------------------------------------------------------- overlapping requests: no Wh paid twice

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

SITE_POOL = ["0x" + f"{i:040x}" for i in range(1, 7)]


def _request(request_id: int, start: int, length: int, gate: int, allocation: Allocation) -> FlexRequest:
    return FlexRequest(request_id, 4, start, start + length, 3_000, 200_000, "0x" + "ee" * 20, max_budget=10**9,
                       gate_closure=gate, allocation=PostedAllocation(allocation.root(), allocation.accepted_w,
                                                                      allocation.clearing_price))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 6) .map(lambda k: k * 900), st.sampled_from([900, 1_800, 3_600]),
                          st.integers(1, 900), st.sets(st.sampled_from(SITE_POOL), min_size=1, max_size=4)),
                min_size=1, max_size=5))
def test_a_site_is_settled_in_at_most_one_of_overlapping_requests(specs):
    requests = []
    for request_id, (start, length, lead, sites) in enumerate(specs, start=1):
        start += 10_000
        accepted = tuple(sorted((Acceptance(site, site, 1_000) for site in sites), key=lambda a: a.device))
        allocation = Allocation(request_id, 80_000, 1_000 * len(sites), 4_400, 1_000, accepted, ())
        requests.append((_request(request_id, start, length, start - lead, allocation), allocation))
    settled = {}
    for request, allocation in requests:
        commitments = [Stored(a.device, a.watts) for a in allocation.accepted]
        _, kept = settled_commitments(request, commitments, allocation, lambda d: d, taken_sites(request, requests))
        settled[request.request_id] = {c.device for c in kept}
    for a, _ in requests:
        for b, _ in requests:
            if a.request_id < b.request_id and overlaps(a, b):
                assert not settled[a.request_id] & settled[b.request_id], (a, b)
    # and the request that clears first keeps all of its sites
    first = min((r for r, _ in requests), key=lambda r: (r.gate_time, r.request_id))
    assert settled[first.request_id] == {a.device for a in dict((r.request_id, al) for r, al in requests)[
        first.request_id].accepted}
