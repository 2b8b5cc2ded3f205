"""Paying dispatched sites out of the portfolio estimate, and the under-delivery penalty rule."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from oracle.site_pay import FLAG_SITE_BELOW_DEVICES, SiteClaim, allocate, clearly_under, site_noise_wh


def test_split_by_hand():
    claims = [SiteClaim("0xa", 60, 30), SiteClaim("0xb", 60, 90), SiteClaim("0xc", 60, -5)]
    paid = {p.site: p.paid_wh for p in allocate(100, claims)}
    assert paid == {"0xa": 33, "0xb": 60, "0xc": 0}  # weights 30, 60 (capped), 0: 100 * w // 90, at most 60


def test_nobody_is_paid_beyond_the_commitment():
    claims = [SiteClaim("0xa", 60, 30), SiteClaim("0xb", 60, 90)]
    # verified = min(1_000, 120) = 120; 120 * 30 // 90 = 40, 120 * 60 // 90 = 80 -> capped at 60
    assert [p.paid_wh for p in allocate(1_000, claims)] == [40, 60]


def test_a_negative_estimate_pays_nothing_and_a_bad_site_meter_gets_no_weight():
    assert [p.paid_wh for p in allocate(-50, [SiteClaim("0xa", 60, 30)])] == [0]
    pays = allocate(50, [SiteClaim("0xa", 60, 30, below_devices=True), SiteClaim("0xb", 60, 30)])
    assert [(p.paid_wh, p.flags) for p in pays] == [(0, (FLAG_SITE_BELOW_DEVICES,)), (50, ())]


def test_penalty_only_when_clearly_under():
    assert site_noise_wh([10, -10]) == 10
    assert clearly_under(SiteClaim("0xa", 100, 10, (10, -10)), 5_000)  # 10 + 16.45 < 50
    assert not clearly_under(SiteClaim("0xa", 100, 40, (10, -10)), 5_000)  # 56.45 >= 50
    assert not clearly_under(SiteClaim("0xa", 100, -100, (10,)), 5_000)  # one placebo day: noise unknown


@settings(max_examples=100, deadline=None)
@given(st.integers(-10_000, 100_000),
       st.lists(st.tuples(st.integers(0, 5_000), st.integers(-5_000, 10_000), st.booleans()), min_size=1, max_size=20))
def test_allocation_invariants(estimated, rows):
    claims = [SiteClaim(f"0x{i:040x}", c, r, below_devices=b) for i, (c, r, b) in enumerate(rows)]
    pays = allocate(estimated, claims)
    assert sum(p.paid_wh for p in pays) <= max(estimated, 0)
    for claim, pay in zip(claims, pays):
        assert 0 <= pay.paid_wh <= claim.committed_wh
        if claim.reduction_wh <= 0 or claim.below_devices:
            assert pay.paid_wh == 0
