"""protocol.fast_verify recovers exactly what eth-account recovers, and rejects malformed signatures."""

from __future__ import annotations

import pytest
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.fast_verify import RegistryDomainVerifier, recover_digest
from protocol.meter import Commitment, MeterBatch

REGISTRY = "0x" + "5f" * 20
KEY = Account.create()


@settings(max_examples=30, deadline=None)
@given(start=st.integers(0, 2**40).map(lambda n: n * 900), readings=st.lists(st.integers(0, 2**32 - 1), max_size=8),
       sequence=st.integers(0, 2**63), chain_id=st.integers(1, 2**40))
def test_batch_signer_matches_eth_account(start, readings, sequence, chain_id):
    batch = MeterBatch(KEY.address, start, 900, tuple(readings), sequence).signed(KEY.key, chain_id, REGISTRY)
    verifier = RegistryDomainVerifier(chain_id, REGISTRY)
    assert verifier.batch_signer(batch) == batch.signer(chain_id, REGISTRY) == KEY.address


@settings(max_examples=20, deadline=None)
@given(request_id=st.integers(0, 2**256 - 1), watts=st.integers(0, 2**64 - 1), price=st.integers(0, 2**128 - 1),
       extra=st.integers(0, 2**64 - 1), extra_price=st.integers(0, 2**128 - 1))
def test_commitment_signer_matches_eth_account(request_id, watts, price, extra, extra_price):
    commitment = Commitment(request_id, KEY.address, watts, price, extra, extra_price).signed(KEY.key, 31337,
                                                                                             REGISTRY)
    assert RegistryDomainVerifier(31337, REGISTRY).commitment_signer(commitment) == KEY.address
    assert commitment.signer(31337, REGISTRY) == KEY.address


def test_a_tampered_batch_recovers_someone_else():
    batch = MeterBatch(KEY.address, 900, 900, (1, 2), 3).signed(KEY.key, 1, REGISTRY)
    tampered = MeterBatch(batch.device, batch.start, 900, (1, 3), 3, batch.signature)
    assert RegistryDomainVerifier(1, REGISTRY).batch_signer(tampered) != KEY.address


@pytest.mark.parametrize("mutate, message", [
    (lambda s: s[:64], "65 bytes"),
    (lambda s: s[:64] + bytes([29]), "v must be 27 or 28"),
    (lambda s: s[:32] + (2**256 - 1 - 10).to_bytes(32, "big") + s[64:], "lower half"),
])
def test_malformed_signatures_are_rejected(mutate, message):
    batch = MeterBatch(KEY.address, 900, 900, (1,), 0).signed(KEY.key, 1, REGISTRY)
    with pytest.raises(ValueError, match=message):
        recover_digest(RegistryDomainVerifier(1, REGISTRY).batch_digest(batch), mutate(batch.signature))
