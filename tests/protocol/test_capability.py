"""The capability test draw (deterministic, unbiased, independent of the holdout's), the pass rule,
the records and the caps they give (protocol.capability)."""

from __future__ import annotations

import random

import pytest
from eth_hash.auto import keccak
from hypothesis import given, settings, strategies as st

from protocol.capability import (CAPABILITY_TAG, MIN_PASS_W, PROBATION_W, CapabilityRecord, CapabilityRules, cap_of,
                                 control_mean_w, average_w, is_tested, latest, passes, site_caps, capability_draw)
from protocol.holdout import draw_value

addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
seeds = st.binary(min_size=32, max_size=32)
SITE = "0x" + "51" * 20
OTHER = "0x" + "52" * 20


def _by_hand(seed: bytes, request_id: int, site: str) -> int:
    """abi.encode(bytes32, uint256, address, bytes32) laid out by hand, keccak256, mod 10_000."""
    encoded = seed + request_id.to_bytes(32, "big") + bytes(12) + bytes.fromhex(site[2:]) + CAPABILITY_TAG
    return int.from_bytes(keccak(encoded), "big") % 10_000


def test_tag_is_the_documented_string():
    assert CAPABILITY_TAG == keccak(b"negawatt.capability-test")


@settings(max_examples=200, deadline=None)
@given(seeds, st.integers(0, 2**256 - 1), addresses)
def test_draw_is_the_rule_and_deterministic(seed, request_id, site):
    value = capability_draw(seed, request_id, site)
    assert value == _by_hand(seed, request_id, site) == capability_draw(seed, request_id, site.upper().replace("0X", "0x"))
    assert 0 <= value < 10_000


@settings(max_examples=50, deadline=None)
@given(seeds, st.integers(1, 10**6), addresses, st.integers(0, 10_000))
def test_tested_iff_draw_below_share(seed, request_id, site, bps):
    assert is_tested(seed, request_id, site, bps) == (capability_draw(seed, request_id, site) < bps)


def test_share_tested_is_unbiased_and_draws_are_uniform():
    rng = random.Random(5)
    n, bps = 20_000, 2_000
    values = [capability_draw(rng.randbytes(32), rng.randint(1, 10**9), "0x" + rng.randbytes(20).hex())
              for _ in range(n)]
    tested = sum(v < bps for v in values)
    expected, sd = n * bps / 10_000, (n * 0.2 * 0.8) ** 0.5
    assert abs(tested - expected) < 5 * sd
    counts = [0] * 10
    for v in values:
        counts[v // 1_000] += 1
    chi2 = sum((c - n / 10) ** 2 / (n / 10) for c in counts)
    assert chi2 < 27.9  # 9 degrees of freedom, p = 0.001


def test_draw_is_independent_of_the_holdout_draw_on_the_same_inputs():
    """Same seed, request and site: being held out says nothing about being tested (2x2 chi-square)."""
    rng = random.Random(14)
    n, held_bps, test_bps = 20_000, 5_000, 2_000
    cells = {(h, t): 0 for h in (False, True) for t in (False, True)}
    for _ in range(n):
        seed, request_id, site = rng.randbytes(32), rng.randint(1, 10**9), "0x" + rng.randbytes(20).hex()
        cells[(draw_value(seed, request_id, site) < held_bps, capability_draw(seed, request_id, site) < test_bps)] += 1
    p, q = held_bps / 10_000, test_bps / 10_000
    chi2 = 0.0
    for (h, t), observed in cells.items():
        expected = n * (p if h else 1 - p) * (q if t else 1 - q)
        chi2 += (observed - expected) ** 2 / expected
    assert chi2 < 10.8  # 1 degree of freedom, p = 0.001


@settings(max_examples=100, deadline=None)
@given(seeds, st.integers(1, 10**6), addresses)
def test_draw_differs_from_the_holdout_encoding(seed, request_id, site):
    # not a statistical claim: the two draws are different functions (the tag is in the hash)
    digest_h = keccak(seed + request_id.to_bytes(32, "big") + bytes(12) + bytes.fromhex(site[2:]))
    assert draw_value(seed, request_id, site) == int.from_bytes(digest_h, "big") % 10_000
    assert capability_draw(seed, request_id, site) == _by_hand(seed, request_id, site)


def test_bad_share_and_seed_are_refused():
    with pytest.raises(ValueError, match="test_bps"):
        is_tested(bytes(32), 1, SITE, 10_001)
    with pytest.raises(ValueError, match="32-byte"):
        capability_draw(b"short", 1, SITE)
    with pytest.raises(ValueError, match="capability_test_bps"):
        CapabilityRules(SITE, 10_001)


def test_rules_from_the_manifest_parameters():
    rules = CapabilityRules.from_parameters({"capability_tester": "0x" + "ab" * 20, "capability_test_bps": 1_500})
    assert rules.test_bps == 1_500
    assert rules.is_test("0x" + "AB" * 20) and not rules.is_test(SITE) and not rules.is_test("")
    assert not CapabilityRules.from_parameters({}).is_test(SITE)  # a network without a tester runs no tests
    assert not CapabilityRules.from_parameters({"capability_tester": None}).is_test("")


def test_average_w_and_control_mean_by_hand():
    # 2 intervals of 900 s; 500 Wh less than the baseline over them = 500 * 3600 / 1800 = 1000 W
    assert average_w(500, 2, 900) == 1_000
    assert average_w(-1, 2, 900) == -2  # floor, toward minus infinity
    assert control_mean_w([100, 200, 300, 400]) == 0  # fewer than 5 control sites: no correction
    assert control_mean_w([100, 200, 300, 400, -1]) == 999 // 5
    with pytest.raises(ValueError):
        average_w(1, 0, 900)


def test_pass_rule():
    assert passes(1_000, 2_000)          # exactly half of what the devices' baselines said
    assert not passes(999, 2_000)
    assert not passes(MIN_PASS_W - 1, 0)  # nothing flexible: noise does not pass
    assert passes(MIN_PASS_W, 0)
    assert passes(MIN_PASS_W, -50)


def record(site=SITE, request_id=1, tested_w=2_000, passed=True, at=1_000):
    return CapabilityRecord(site, request_id, tested_w, passed, at)


def test_caps_latest_passed_else_probation():
    assert cap_of({}, SITE) == PROBATION_W
    caps = site_caps([record(tested_w=2_000, at=1_000), record(request_id=2, tested_w=3_500, at=2_000),
                      record(request_id=3, tested_w=0, passed=False, at=3_000),  # a later failure does not lower it
                      record(site=OTHER, tested_w=40, passed=False)])
    assert cap_of(caps, SITE.upper().replace("0X", "0x")) == 3_500
    assert cap_of(caps, OTHER) == PROBATION_W  # never passed
    # the latest passed one wins even when smaller than an earlier one
    assert cap_of(site_caps([record(tested_w=5_000, at=1), record(request_id=9, tested_w=1_200, at=2)]), SITE) == 1_200
    # same time: the higher request id is the later
    assert cap_of(site_caps([record(request_id=4, tested_w=900, at=5), record(request_id=3, tested_w=800, at=5)]),
                  SITE) == 900
    assert latest([record(at=1), record(request_id=2, at=2)]).request_id == 2 and latest([]) is None


def test_record_json_round_trip_and_refusals():
    r = record()
    assert CapabilityRecord.from_json(r.as_json()) == CapabilityRecord("0x" + "51" * 20, 1, 2_000, True, 1_000)
    assert r.as_json() == {"site": SITE, "requestId": 1, "testedW": 2_000, "passed": True, "testedAt": 1_000}
    for bad in ({"site": SITE}, {**r.as_json(), "passed": "yes"}, {**r.as_json(), "testedW": -1}):
        with pytest.raises(ValueError):
            CapabilityRecord.from_json(bad)
