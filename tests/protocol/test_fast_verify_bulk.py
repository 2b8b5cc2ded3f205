"""protocol.fast_verify.BulkBatchVerifier agrees with the one-by-one verifier on every batch, and
refuses tampered batches (a reading changed, another key's signature, the device swapped), in a
tight loop and over a process pool alike."""

from __future__ import annotations

from dataclasses import replace

from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.fast_verify import BulkBatchVerifier, RegistryDomainVerifier, batch_digests
from protocol.meter import MeterBatch

REGISTRY = "0x" + "5f" * 20
CHAIN_ID = 31337
KEYS = [Account.create() for _ in range(3)]


def signed(key, start: int, readings: tuple[int, ...], sequence: int) -> MeterBatch:
    return MeterBatch(key.address, start, 900, readings, sequence).signed(key.key, CHAIN_ID, REGISTRY)


@settings(max_examples=25, deadline=None)
@given(readings=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=96),
       start=st.integers(0, 2**40).map(lambda n: n * 900), sequence=st.integers(0, 2**63 - 1))
def test_bulk_digests_are_the_one_by_one_digests(readings, start, sequence):
    batch = signed(KEYS[0], start, tuple(readings), sequence)
    one = RegistryDomainVerifier(CHAIN_ID, REGISTRY)
    assert batch_digests(one.separator, [batch]) == [one.batch_digest(batch)]
    assert BulkBatchVerifier(one.separator).check([batch])[0].ok


def tampered_set() -> tuple[list[MeterBatch], list[bool]]:
    good = [signed(KEYS[i % 2], 900 * i, (i, i + 1, 7), i) for i in range(6)]
    reading_changed = replace(good[1], readings=(1, 2, 8))
    other_key = MeterBatch(KEYS[0].address, 0, 900, (5,), 9).signed(KEYS[2].key, CHAIN_ID, REGISTRY)
    device_swapped = replace(good[2], device=KEYS[2].address)
    short_signature = MeterBatch(KEYS[0].address, 0, 900, (5,), 10, good[0].signature[:64])
    out_of_range = MeterBatch(KEYS[0].address, 0, 900, (2**32,), 11, good[0].signature)
    batches = good + [reading_changed, other_key, device_swapped, short_signature, out_of_range]
    return batches, [True] * len(good) + [False] * 5


def test_tampered_batches_are_refused_and_the_rest_pass():
    batches, expected = tampered_set()
    checks = BulkBatchVerifier.for_registry(CHAIN_ID, REGISTRY).check(batches)
    assert [c.ok for c in checks] == expected
    assert "not by" in checks[6].reason and "not by" in checks[7].reason and "not by" in checks[8].reason
    assert "65 bytes" in checks[9].reason and "uint32" in checks[10].reason


def test_a_process_pool_gives_the_same_answers_as_the_loop():
    batches, expected = tampered_set()
    batches, expected = batches * 3, expected * 3
    pooled = BulkBatchVerifier.for_registry(CHAIN_ID, REGISTRY, processes=2)
    pooled.min_per_process = 5  # split even this small set
    try:
        assert pooled.check(batches) == BulkBatchVerifier.for_registry(CHAIN_ID, REGISTRY).check(batches)
        assert [c.ok for c in pooled.check(batches)] == expected
        assert pooled._pool is not None
    finally:
        pooled.close()
