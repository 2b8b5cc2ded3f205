"""The JSON codecs of the signed messages: what a node sends is what an oracle reads, and nothing
loose gets through (strings or floats for integers, out-of-range values, unknown fields)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from protocol.meter import Commitment, MeterBatch
from protocol.messages import (
    MAX_READINGS_PER_BATCH,
    decode_batch,
    decode_commitment,
    encode_batch,
    encode_commitment,
)

KEY = "0x" + "59" * 32
REGISTRY = "0x" + "5f" * 20
CHAIN = 31337


def _device() -> str:
    from eth_account import Account

    return Account.from_key(KEY).address


@settings(max_examples=25, deadline=None)
@given(start=st.integers(0, 2**40), readings=st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=20),
       sequence=st.integers(0, 2**63 - 1))
def test_a_signed_batch_survives_the_wire_and_still_verifies(start, readings, sequence):
    batch = MeterBatch(_device(), start * 900, 900, tuple(readings), sequence).signed(KEY, CHAIN, REGISTRY)
    decoded = decode_batch(json.dumps(encode_batch(batch)))
    assert decoded == batch and decoded.signature == batch.signature
    assert decoded.signer(CHAIN, REGISTRY) == _device()


def test_a_signed_commitment_survives_the_wire():
    commitment = Commitment(2**200, _device(), 3_500).signed(KEY, CHAIN, REGISTRY)
    decoded = decode_commitment(encode_commitment(commitment))
    assert decoded == commitment and decoded.signer(CHAIN, REGISTRY) == _device()


def test_a_tiered_offer_survives_the_wire_and_its_prices_are_signed():
    offer = Commitment(7, _device(), 2_000, 150_000, 1_000, 300_000).signed(KEY, CHAIN, REGISTRY)
    body = encode_commitment(offer)
    assert (body["minPricePerKWh"], body["extraWatts"], body["extraMinPricePerKWh"]) == (150_000, 1_000, 300_000)
    decoded = decode_commitment(json.dumps(body))
    assert decoded == offer and decoded.signer(CHAIN, REGISTRY) == _device()
    body["minPricePerKWh"] = 100_000  # a relay lowering the price: the signature no longer matches
    assert decode_commitment(body).signer(CHAIN, REGISTRY) != _device()


@pytest.mark.parametrize("changes, message", [
    ({"minPricePerKWh": -1}, "minPricePerKWh"),
    ({"minPricePerKWh": 2**128}, "minPricePerKWh"),
    ({"minPricePerKWh": "5"}, "minPricePerKWh"),
    ({"extraWatts": 500, "extraMinPricePerKWh": 100}, "below the first tranche"),
    ({"extraWatts": 0, "extraMinPricePerKWh": 100}, "without extraWatts"),
])
def test_bad_offers_are_refused_with_a_reason(changes, message):
    body = encode_commitment(Commitment(7, _device(), 2_000, 150_000).signed(KEY, CHAIN, REGISTRY))
    body.update(changes)
    with pytest.raises(ValidationError, match=message):
        decode_commitment(body)


@pytest.mark.parametrize("field, value", [
    ("start", "900"), ("start", 900.0), ("sequence", True), ("readings", [1, "2"]), ("readings", [2**32]),
    ("sequence", 2**63), ("device", "0x" + "11" * 20 + "\n"), ("device", "0x" + "ab" * 19 + "aB"),
    ("signature", "0xabc"), ("signature", "0x" + "00" * 600), ("readings", [0] * (MAX_READINGS_PER_BATCH + 1)),
    ("extra", 1),
])
def test_loose_batches_are_refused_naming_the_field(field, value):
    body = encode_batch(MeterBatch(_device(), 900, 900, (1, 2), 0).signed(KEY, CHAIN, REGISTRY))
    body[field] = value
    with pytest.raises(ValidationError, match=field):
        decode_batch(body)


def test_peer_listings_may_carry_extra_fields_when_asked():
    body = encode_batch(MeterBatch(_device(), 900, 900, (1, 2), 0).signed(KEY, CHAIN, REGISTRY))
    listing = {**body, "digest": "0x" + "00" * 32, "receivedAt": 5}
    with pytest.raises(ValidationError):
        decode_batch(listing)
    assert decode_batch(listing, ignore_extra=True).readings == (1, 2)
