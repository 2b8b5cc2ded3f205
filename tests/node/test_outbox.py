"""node.outbox: atomic batches with deliveries, ordering, replays of commitments, a newly known oracle."""

from __future__ import annotations

import time

from eth_account import Account

from node.outbox import Outbox
from protocol.meter import Commitment, MeterBatch

REGISTRY = "0x" + "11" * 20


def batch(key, sequence: int) -> MeterBatch:
    return MeterBatch(key.address, 900 * sequence, 900, (sequence,), sequence).signed(key.key, 1, REGISTRY)


def test_deliveries_per_oracle_acks_retries_and_rejections(tmp_path):
    key = Account.create()
    outbox = Outbox(tmp_path / "o.sqlite")
    for sequence in range(3):
        outbox.add_batch(batch(key, sequence), ["http://a", "http://b"], boundary=900 * (sequence + 1), energy_wh=7)
    assert outbox.next_sequence(key.address) == 3 and outbox.meter_state(key.address) == (2_700, 7)
    assert outbox.depth() == {"http://a": 3, "http://b": 3}
    due = outbox.due("http://a", time.time())
    assert [d.payload["sequence"] for d in due] == [0, 1, 2]
    outbox.mark_acked(due[0])
    outbox.mark_retry(due[1], "503 chain_unavailable", time.time() + 60)
    outbox.mark_rejected(due[2], "422 reading_out_of_range")
    assert [d.payload["sequence"] for d in outbox.due("http://a", time.time())] == []
    assert [d.payload["sequence"] for d in outbox.due("http://a", time.time() + 61)] == [1]
    assert outbox.depth() == {"http://a": 1, "http://b": 3}
    assert outbox.rejected() == [("batch", due[2].item_id, "http://a", "422 reading_out_of_range")]
    assert [b.sequence for b in outbox.batches(key.address)] == [0, 1, 2]


def test_a_commitment_is_stored_once_and_a_new_oracle_is_owed_recent_items(tmp_path):
    key = Account.create()
    outbox = Outbox(tmp_path / "o.sqlite")
    commitment = Commitment(4, key.address, 1_500).signed(key.key, 1, REGISTRY)
    assert outbox.add_commitment(commitment, ["http://a"]) is not None
    assert outbox.add_commitment(commitment, ["http://a"]) is None
    outbox.add_batch(batch(key, 0), ["http://a"])
    assert outbox.add_oracle("http://new", since=int(time.time()) - 60) == 2
    assert outbox.add_oracle("http://new", since=0) == 0  # nothing owed twice
    due = outbox.due("http://new", time.time())
    assert [(d.kind, d.payload.get("requestId", d.payload.get("sequence"))) for d in due] == [("commitment", 4),
                                                                                             ("batch", 0)]


def test_a_priced_offer_leaves_the_outbox_as_it_was_signed(tmp_path):
    # every signed field of the offer, availability included, must survive the outbox: a field lost
    # on the way changes the EIP-712 digest and the oracle recovers someone else (bad_signature)
    from protocol.messages import decode_commitment

    key = Account.create()
    outbox = Outbox(tmp_path / "o.sqlite")
    signed = Commitment(4, key.address, 1_500, 120_000, 500, 180_000, 25_000).signed(key.key, 1, REGISTRY)
    outbox.add_commitment(signed, ["http://a"])
    (delivery,) = outbox.due("http://a", time.time())
    sent = decode_commitment(delivery.payload)
    assert sent == signed and sent.min_availability_price_per_kwh == 25_000
    assert sent.signer(1, REGISTRY) == key.address
