"""The holdout draw: deterministic, uniform, and the same as an independent encoding of the rule."""

from __future__ import annotations

import random

import pytest
from eth_hash.auto import keccak
from hypothesis import given, settings, strategies as st

from protocol.holdout import draw_value, gate_block_number, is_held_out

addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())
seeds = st.binary(min_size=32, max_size=32)


def _by_hand(seed: bytes, request_id: int, site: str) -> int:
    """abi.encode(bytes32, uint256, address) laid out by hand, then keccak256, mod 10_000."""
    word = request_id.to_bytes(32, "big")
    address = bytes(12) + bytes.fromhex(site[2:])
    return int.from_bytes(keccak(seed + word + address), "big") % 10_000


@settings(max_examples=200, deadline=None)
@given(seeds, st.integers(0, 2**256 - 1), addresses)
def test_draw_is_the_rule_and_deterministic(seed, request_id, site):
    value = draw_value(seed, request_id, site)
    assert value == _by_hand(seed, request_id, site) == draw_value(seed, request_id, site.upper().replace("0X", "0x"))
    assert 0 <= value < 10_000


@settings(max_examples=50, deadline=None)
@given(seeds, st.integers(1, 10**6), addresses, st.integers(0, 5_000))
def test_held_out_iff_draw_below_share(seed, request_id, site, bps):
    assert is_held_out(seed, request_id, site, bps) == (draw_value(seed, request_id, site) < bps)


def test_share_held_out_is_unbiased_and_draws_are_uniform():
    rng = random.Random(13)
    n, bps = 20_000, 1_500
    values = [draw_value(rng.randbytes(32), rng.randint(1, 10**9), "0x" + rng.randbytes(20).hex()) for _ in range(n)]
    held = sum(v < bps for v in values)
    expected, sd = n * bps / 10_000, (n * 0.15 * 0.85) ** 0.5
    assert abs(held - expected) < 5 * sd
    counts = [0] * 10
    for v in values:
        counts[v // 1_000] += 1
    chi2 = sum((c - n / 10) ** 2 / (n / 10) for c in counts)
    assert chi2 < 27.9  # 9 degrees of freedom, p = 0.001


def test_bad_share_and_seed_are_refused():
    with pytest.raises(ValueError, match="holdout_bps"):
        is_held_out(bytes(32), 1, "0x" + "11" * 20, 5_001)
    with pytest.raises(ValueError, match="32-byte"):
        draw_value(b"short", 1, "0x" + "11" * 20)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 30), min_size=1, max_size=60), st.integers(-5, 1_000))
def test_gate_block_is_the_first_block_at_or_after_the_gate(steps, gate):
    times = []
    t = 0
    for step in steps:
        t += step
        times.append(t)
    found = gate_block_number(lambda n: times[n], len(times) - 1, gate)
    linear = next((n for n, ts in enumerate(times) if ts >= gate), None)
    assert found == linear
