"""Invariants of protocol.clearing on generated offer sets: the cap and the ceiling hold, the uniform
price covers every accepted offer, the same offer set gives the same root in any order, the control
group is never accepted, and no device is asked for more than it offered."""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils import to_checksum_address
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.clearing import (
    MAX_MARGIN_BPS,
    Allocation,
    Offer,
    Reliability,
    clear,
    margin_bps_from_history,
    verify_acceptance,
)

SITES = [to_checksum_address((0xA0 + i).to_bytes(20, "big")) for i in range(6)]
DEVICES = [to_checksum_address((0xB00 + 13 * i).to_bytes(20, "big")) for i in range(12)]


@dataclass(frozen=True)
class Market:
    """One generated clearing problem."""

    request_id: int
    target_w: int
    ceiling: int
    margin_bps: int
    offers: list[Offer]
    reliability: dict[str, Reliability]
    held: frozenset[str]
    availability_ceiling: int = 0

    def clear(self, offers: list[Offer] | None = None, held: frozenset[str] | None = None) -> Allocation:
        held_set = self.held if held is None else held
        return clear(self.request_id, self.target_w, self.ceiling, self.offers if offers is None else offers,
                     self.reliability, self.margin_bps, lambda site: site in held_set,
                     availability_ceiling=self.availability_ceiling)


@st.composite
def markets(draw, with_tranche_one: bool = True, with_availability: bool = True) -> Market:
    devices = draw(st.lists(st.sampled_from(DEVICES), min_size=0, max_size=len(DEVICES), unique=True))
    offers: list[Offer] = []
    for device in devices:
        site = draw(st.sampled_from(SITES + [device]))  # a device without a site meter is its own site
        price = draw(st.integers(0, 500))
        availability = draw(st.integers(0, 300)) if with_availability and draw(st.booleans()) else 0
        offers.append(Offer(site, device, 0, draw(st.integers(1, 20_000)), price, availability))
        if with_tranche_one and draw(st.booleans()):
            offers.append(Offer(site, device, 1, draw(st.integers(1, 10_000)), price + draw(st.integers(0, 200)),
                                availability))
    sites = sorted({o.site for o in offers})
    reliability = {
        site: Reliability(draw(st.integers(0, 5_000)), draw(st.integers(0, 5_000)))
        for site in sites
        if draw(st.booleans())
    }
    held = frozenset(s for s in sites if draw(st.booleans())) if draw(st.booleans()) else frozenset()
    return Market(
        request_id=draw(st.integers(0, 2**64)),
        target_w=draw(st.integers(0, 100_000)),
        ceiling=draw(st.integers(0, 700)),
        margin_bps=draw(st.integers(0, MAX_MARGIN_BPS)),
        offers=offers,
        reliability=reliability,
        held=held,
        availability_ceiling=draw(st.integers(0, 400)) if with_availability else 0,
    )


def offered(market: Market) -> dict[tuple[str, int], Offer]:
    return {(o.device, o.tranche): o for o in market.offers}


@settings(max_examples=300, deadline=None)
@given(markets())
def test_cap_ceiling_and_uniform_price(market):
    allocation = market.clear()
    assert allocation.cap_w == market.target_w * (10_000 + market.margin_bps) // 10_000
    assert allocation.accepted_w == sum(a.watts for a in allocation.accepted) <= allocation.cap_w
    assert 0 <= allocation.clearing_price <= market.ceiling
    assert 0 <= allocation.availability_price <= market.availability_ceiling
    by_key = offered(market)
    for acceptance in allocation.accepted:
        confident = by_key[(acceptance.device, 0)]
        assert confident.price <= allocation.clearing_price  # its tranche 0 was accepted
        assert confident.availability_price <= allocation.availability_price
        if acceptance.watts > confident.watts:  # more than tranche 0: tranche 1 was accepted too
            assert by_key[(acceptance.device, 1)].price <= allocation.clearing_price
    if not allocation.accepted:
        assert allocation.clearing_price == 0
        assert allocation.root() == bytes(32)
        assert allocation.control_sites == ()


@settings(max_examples=300, deadline=None)
@given(markets(with_tranche_one=False))
def test_fills_the_cap_or_the_supply_under_both_ceilings(market):
    allocation = market.clear(held=frozenset())
    supply = sum(o.watts for o in market.offers
                 if o.price <= market.ceiling and o.availability_price <= market.availability_ceiling)
    assert allocation.accepted_w == min(allocation.cap_w, supply)


@settings(max_examples=300, deadline=None)
@given(markets(with_tranche_one=False, with_availability=False))
def test_fills_the_cap_or_the_supply_under_the_ceiling(market):
    allocation = market.clear(held=frozenset())
    supply = sum(o.watts for o in market.offers if o.price <= market.ceiling)
    assert allocation.accepted_w == min(allocation.cap_w, supply)
    # merit order: every offer priced below the clearing price is accepted in full
    for offer in market.offers:
        if offer.price < allocation.clearing_price:
            assert allocation.acceptance(offer.device).watts == offer.watts


@settings(max_examples=200, deadline=None)
@given(markets(), st.randoms(use_true_random=False))
def test_same_offer_set_in_any_order_gives_the_same_root(market, random):
    first = market.clear()
    offers = market.offers[:]
    random.shuffle(offers)
    keys = list(market.reliability)
    random.shuffle(keys)
    again = clear(market.request_id, market.target_w, market.ceiling, offers,
                  {k: market.reliability[k] for k in keys}, market.margin_bps, lambda site: site in market.held,
                  availability_ceiling=market.availability_ceiling)
    assert again == first
    assert again.root() == first.root()


@settings(max_examples=300, deadline=None)
@given(markets())
def test_control_group_is_never_accepted_and_devices_never_exceed_their_offers(market):
    allocation = market.clear()
    assert not {a.site for a in allocation.accepted} & market.held
    assert set(allocation.control_sites) <= market.held
    if allocation.accepted:
        in_money = {o.site for o in market.offers if o.site in market.held and o.price <= allocation.clearing_price
                    and o.availability_price <= allocation.availability_price}
        assert set(allocation.control_sites) == in_money
    for acceptance in allocation.accepted:
        assert 0 < acceptance.watts <= sum(o.watts for o in market.offers if o.device == acceptance.device)


@settings(max_examples=100, deadline=None)
@given(markets())
def test_every_acceptance_proves_against_the_root(market):
    allocation = market.clear()
    root = allocation.root()
    for a in allocation.accepted:
        proof = allocation.proof(a.device)
        assert verify_acceptance(root, market.request_id, a.device, a.watts, allocation.clearing_price, proof)
        assert not verify_acceptance(root, market.request_id, a.device, a.watts + 1, allocation.clearing_price, proof)


@given(st.lists(st.builds(Reliability, st.integers(0, 10**9), st.integers(0, 10**9)), max_size=20))
def test_margin_is_clamped_and_covers_the_delivery_shortfall(history):
    margin = margin_bps_from_history(history)
    assert 0 <= margin <= MAX_MARGIN_BPS
    accepted = sum(r.accepted_wh for r in history)
    delivered = sum(r.delivered_wh for r in history)
    if accepted == 0:
        assert margin == 1_000  # no record: the default 10 %
    elif delivered == 0:
        assert margin == MAX_MARGIN_BPS
    elif accepted <= delivered:
        assert margin == 0  # delivered in full or more: no over-procurement
    elif margin < MAX_MARGIN_BPS:
        # the floor of the shortfall: accepted / delivered - 1 in bps, one more bps would over-cover it
        assert delivered * (10_000 + margin) <= accepted * 10_000 < delivered * (10_000 + margin + 1)
    else:
        assert accepted * 10_000 >= delivered * (10_000 + MAX_MARGIN_BPS)  # clamped only when the rule asks more
