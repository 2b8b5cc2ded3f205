"""The clearing's capability caps (protocol.clearing `site_caps`, protocol.capability), by hand and as
a property: an unproven site is held to the probationary cap, a proven one to its tested W."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st
from eth_utils import to_checksum_address

from protocol.capability import PROBATION_W, CapabilityRecord, cap_of, site_caps
from protocol.clearing import Offer, cap_offers, clear

NOBODY_HELD_OUT = lambda site: False  # noqa: E731


def addr(n: int) -> str:
    return to_checksum_address(n.to_bytes(20, "big"))


SITE_A, SITE_B = addr(0x5A), addr(0x5B)
EV_A, HP_A, EV_B = addr(0xA1), addr(0xA2), addr(0xB1)


def caps_from(records):
    caps = site_caps(records)
    return lambda site: cap_of(caps, site)


def test_an_untested_sites_big_offer_is_capped_at_the_probationary_cap():
    offers = [Offer(SITE_A, EV_A, 0, 7_000, 100), Offer(SITE_B, EV_B, 0, 1_000, 200)]
    uncapped = clear(1, 20_000, 1_000, offers, {}, 0, NOBODY_HELD_OUT)
    assert uncapped.acceptance(EV_A).watts == 7_000
    capped = clear(1, 20_000, 1_000, offers, {}, 0, NOBODY_HELD_OUT, site_caps=caps_from([]))
    assert capped.acceptance(EV_A).watts == PROBATION_W == 1_500
    assert capped.acceptance(EV_B).watts == 1_000  # under the cap: untouched
    assert capped.accepted_w == 2_500


def test_after_a_passed_test_the_site_is_capped_at_its_tested_w():
    offers = [Offer(SITE_A, EV_A, 0, 7_000, 100)]
    records = [CapabilityRecord(SITE_A, 3, 4_200, True, 1_000)]
    allocation = clear(1, 20_000, 1_000, offers, {}, 0, NOBODY_HELD_OUT, site_caps=caps_from(records))
    assert allocation.acceptance(EV_A).watts == 4_200
    # a failed test records nothing that raises the cap
    failed = [CapabilityRecord(SITE_A, 3, 6_000, False, 1_000)]
    assert clear(1, 20_000, 1_000, offers, {}, 0, NOBODY_HELD_OUT,
                 site_caps=caps_from(failed)).acceptance(EV_A).watts == PROBATION_W


def test_the_cap_is_per_site_tranche_0_first_then_cheapest():
    # site A: heat pump 1_000 W at 50 (t0), EV 2_000 W at 100 (t0), EV 1_000 W more at 150 (t1); cap 2_500 W
    offers = [Offer(SITE_A, EV_A, 1, 1_000, 150), Offer(SITE_A, EV_A, 0, 2_000, 100),
              Offer(SITE_A, HP_A, 0, 1_000, 50)]
    cut = cap_offers(offers, lambda site: 2_500)
    assert [(o.device, o.tranche, o.watts) for o in cut] == [(HP_A, 0, 1_000), (EV_A, 0, 1_500)]
    allocation = clear(1, 10_000, 1_000, offers, {}, 0, NOBODY_HELD_OUT, site_caps=lambda site: 2_500)
    assert allocation.accepted_w == 2_500 and allocation.clearing_price == 100  # the EV's tranche 1 is gone


sites = st.integers(1, 6).map(lambda n: addr(0x500 + n))


@st.composite
def offer_sets(draw):
    offers, seen = [], set()
    for _ in range(draw(st.integers(0, 12))):
        site = draw(sites)
        device = addr(0x1000 + int(site, 16) * 16 + draw(st.integers(0, 3)))
        tranche = draw(st.integers(0, 1))
        if (device, tranche) in seen or any(o.device == device and o.site != site for o in offers):
            continue
        seen.add((device, tranche))
        offers.append(Offer(site, device, tranche, draw(st.integers(1, 8_000)), draw(st.integers(0, 500))))
    return offers


@settings(max_examples=200, deadline=None)
@given(offer_sets(), st.dictionaries(sites, st.integers(0, 9_000)), st.integers(0, 60_000))
def test_no_site_is_ever_accepted_above_its_cap(offers, caps, target):
    cap = lambda site: caps.get(site, PROBATION_W)  # noqa: E731
    allocation = clear(1, target, 400, offers, {}, 0, NOBODY_HELD_OUT, site_caps=cap)
    per_site: dict[str, int] = {}
    for acceptance in allocation.accepted:
        per_site[acceptance.site] = per_site.get(acceptance.site, 0) + acceptance.watts
    assert all(watts <= cap(site) for site, watts in per_site.items())
    # and the same offers in another order give the same root
    again = clear(1, target, 400, list(reversed(offers)), {}, 0, NOBODY_HELD_OUT, site_caps=cap)
    assert again.root() == allocation.root()
