import ape
from negawatt.deploy import TOKEN

def test_probe(token, minter, owner, other, staking, chain):
    p0 = chain.pending_timestamp
    h0 = chain.blocks.head
    print("0 head", h0.number, h0.timestamp, "pending", p0)
    t = p0 + 1000
    chain.pending_timestamp = t
    print("A t", t, "head", chain.blocks.head.number, chain.blocks.head.timestamp, "pending", chain.pending_timestamp)
    with ape.reverts(staking.ZeroAmount) as info:
        staking.stake(0, sender=owner)
    print("B head", chain.blocks.head.number, chain.blocks.head.timestamp, "pending", chain.pending_timestamp)
    chain.pending_timestamp = t + 50
    print("B2 head", chain.blocks.head.number, chain.blocks.head.timestamp, "pending", chain.pending_timestamp)
    with ape.reverts(staking.ZeroAmount) as info:
        staking.stake(0, sender=owner)
    print("B3 head", chain.blocks.head.number, chain.blocks.head.timestamp, "pending", chain.pending_timestamp)
    assert 0
