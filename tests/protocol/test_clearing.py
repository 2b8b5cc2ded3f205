"""protocol.clearing: the clearing rule on cases worked by hand, the margin rule, and the allocation
tree checked against an independent StandardMerkleTree layout and against @openzeppelin/merkle-tree."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest
from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from protocol.clearing import (
    ALLOCATION_LEAF_TYPES,
    DEFAULT_MARGIN_BPS,
    MAX_MARGIN_BPS,
    Acceptance,
    Allocation,
    Offer,
    Reliability,
    allocation_leaf_hash,
    clear,
    margin_bps_from_history,
    verify_acceptance,
)

REPO = Path(__file__).resolve().parents[2]
ZERO = b"\x00" * 32


def addr(n: int) -> str:
    """A checksummed address whose lowercase hex order is the order of n."""
    return to_checksum_address(n.to_bytes(20, "big"))


def own(n: int, price: int, watts: int, tranche: int = 0) -> Offer:
    """An offer of device n that is its own site."""
    return Offer(site=addr(n), device=addr(n), tranche=tranche, watts=watts, price=price)


def nobody(_site: str) -> bool:
    return False


def watts_of(allocation: Allocation) -> dict[str, int]:
    return {a.device: a.watts for a in allocation.accepted}


# --- the clearing rule, by hand -------------------------------------------------------------


def test_partial_acceptance_of_the_marginal_offer():
    # target 10_000 W, margin 1_000 bps: cap = 10_000 * 11_000 // 10_000 = 11_000 W.
    # merit order: d1 4_000 @100, d2 5_000 @150, d3 3_000 @200, d4 2_000 @250 (ceiling 300).
    # d1 fits: remaining 11_000 - 4_000 = 7_000; d2 fits: 7_000 - 5_000 = 2_000;
    # d3 (3_000) does not fit: accepted for the remaining 2_000 W, and clearing stops; d4 gets nothing.
    # clearing price = d3's 200 (uniform), accepted_w = 4_000 + 5_000 + 2_000 = 11_000.
    offers = [own(4, 250, 2_000), own(2, 150, 5_000), own(1, 100, 4_000), own(3, 200, 3_000)]
    allocation = clear(7, 10_000, 300, offers, {}, 1_000, nobody)
    assert allocation.cap_w == 11_000
    assert allocation.margin_bps == 1_000
    assert allocation.accepted_w == 11_000
    assert allocation.clearing_price == 200
    assert watts_of(allocation) == {addr(1): 4_000, addr(2): 5_000, addr(3): 2_000}
    assert allocation.acceptance(addr(4)) is None
    assert allocation.acceptance(addr(3)) == Acceptance(device=addr(3), site=addr(3), watts=2_000)
    assert [a.device for a in allocation.accepted] == [addr(1), addr(2), addr(3)]
    assert allocation.control_sites == ()


def test_exact_fill_stops_at_the_last_whole_offer():
    # cap = 5_000 * 10_000 // 10_000 = 5_000; d1 2_000 @10 + d2 3_000 @20 fill it exactly
    # (remaining 0), so d3 @30 is not accepted and the clearing price is d2's 20, not 30.
    allocation = clear(1, 5_000, 100, [own(1, 10, 2_000), own(2, 20, 3_000), own(3, 30, 1)], {}, 0, nobody)
    assert allocation.accepted_w == 5_000
    assert allocation.clearing_price == 20
    assert watts_of(allocation) == {addr(1): 2_000, addr(2): 3_000}


def test_ties_broken_by_reliability_then_by_address():
    # all four sites offer 3_000 W at 100. Merit ratios: site 1 = 9/10; site 2 has no record -> 1;
    # site 3 over-delivered 12/10 -> capped at 1; site 4 = 19/20. Order: ratio 1 first (sites 2 and
    # 3, tied, by address: 2 then 3), then 19/20 (site 4), then 9/10 (site 1).
    # cap 4_000: site 2 3_000 (rem 1_000), site 3 partial 1_000. (Uncapped, 12/10 would put site 3
    # first and give site 3 3_000, site 2 1_000.)
    # cap 10_000: sites 2, 3, 4 3_000 each (rem 1_000), site 1 partial 1_000 (19/20 > 9/10).
    offers = [own(1, 100, 3_000), own(2, 100, 3_000), own(3, 100, 3_000), own(4, 100, 3_000)]
    reliability = {addr(1): Reliability(900, 1_000), addr(3): Reliability(1_200, 1_000), addr(4): Reliability(1_900, 2_000)}
    allocation = clear(2, 4_000, 100, offers, reliability, 0, nobody)
    assert watts_of(allocation) == {addr(2): 3_000, addr(3): 1_000}
    assert allocation.clearing_price == 100
    allocation = clear(2, 10_000, 100, offers, reliability, 0, nobody)
    assert watts_of(allocation) == {addr(2): 3_000, addr(3): 3_000, addr(4): 3_000, addr(1): 1_000}
    # the exact Fraction comparison: 9_999/10_000 of site 1 against 99_989/100_000 of site 4 (0.9999 > 0.99989)
    reliability = {addr(1): Reliability(9_999, 10_000), addr(4): Reliability(99_989, 100_000)}
    allocation = clear(2, 4_000, 100, [own(1, 100, 3_000), own(4, 100, 3_000)], reliability, 0, nobody)
    assert watts_of(allocation) == {addr(1): 3_000, addr(4): 1_000}


def test_price_comes_before_reliability():
    # site 1 (ratio 1/2) at 99 beats site 2 (no record, ratio 1) at 100: cap 3_000, site 1 takes it all.
    offers = [own(1, 99, 3_000), own(2, 100, 3_000)]
    allocation = clear(3, 3_000, 100, offers, {addr(1): Reliability(500, 1_000)}, 0, nobody)
    assert watts_of(allocation) == {addr(1): 3_000}
    assert allocation.clearing_price == 99


def test_ties_within_a_site_go_by_device_address_then_tranche():
    # site 9 has devices 5 and 6, both 1_000 W @50 in tranche 0 and device 5 also 1_000 W @50 in
    # tranche 1. Order: (dev 5, t0), (dev 5, t1), (dev 6, t0). cap 2_500: dev 5 t0 1_000, dev 5 t1
    # 1_000 (its t0 was accepted in full), dev 6 partial 500.
    site = addr(9)
    offers = [
        Offer(site, addr(6), 0, 1_000, 50),
        Offer(site, addr(5), 1, 1_000, 50),
        Offer(site, addr(5), 0, 1_000, 50),
    ]
    allocation = clear(4, 2_500, 50, offers, {}, 0, nobody)
    assert watts_of(allocation) == {addr(5): 2_000, addr(6): 500}
    assert all(a.site == site for a in allocation.accepted)


def test_a_ceiling_excludes_offers_even_when_the_cap_is_not_filled():
    # ceiling 200, cap = 10_000: d1 2_000 @150 and d3 1_000 @200 (at the ceiling) are accepted;
    # d2 @250 is above the ceiling and never accepted, although 7_000 W of the cap stay unfilled.
    # accepted_w = 3_000, clearing price = 200 (= the ceiling, not above it).
    offers = [own(1, 150, 2_000), own(2, 250, 3_000), own(3, 200, 1_000)]
    allocation = clear(5, 10_000, 200, offers, {}, 0, nobody)
    assert watts_of(allocation) == {addr(1): 2_000, addr(3): 1_000}
    assert allocation.accepted_w == 3_000
    assert allocation.clearing_price == 200
    assert clear(5, 10_000, 149, offers, {}, 0, nobody).accepted == ()


def test_held_out_sites_are_control_only_when_in_the_money():
    # held out: site 11 (offer @120) and site 12 (offer @300). Others: site 1 2_000 @100, site 2
    # 5_000 @200. cap 4_000: site 1 2_000 (rem 2_000), site 2 partial 2_000; clearing price 200.
    # Site 11 is cheaper than site 2 but never accepted; it is a control site (120 <= 200);
    # site 12 is not (300 > 200: it would not have been accepted either).
    held = {addr(11), addr(12)}
    calls: list[str] = []

    def held_out(site: str) -> bool:
        calls.append(site)
        return site in held

    offers = [own(12, 300, 1_000), own(1, 100, 2_000), own(11, 120, 9_000), own(2, 200, 5_000)]
    allocation = clear(6, 4_000, 400, offers, {}, 0, held_out)
    assert watts_of(allocation) == {addr(1): 2_000, addr(2): 2_000}
    assert allocation.clearing_price == 200
    assert allocation.control_sites == (addr(11),)
    assert sorted(calls) == sorted([addr(1), addr(2), addr(11), addr(12)])  # once per site, checksummed
    # the control test is "some offer of the site <= clearing price": a second device of site 12
    # offering @200 (= the clearing price) makes site 12 a control site too.
    offers.append(Offer(addr(12), addr(13), 0, 1_000, 200))
    assert clear(6, 4_000, 400, offers, {}, 0, held_out).control_sites == (addr(11), addr(12))


def test_no_control_sites_when_nothing_is_accepted():
    # held-out site 11 offers @0, the only other offer is @500, above the ceiling 400: nothing is
    # accepted, clearing price 0, and site 11 (0 <= 0) is still not reported as a control site.
    allocation = clear(6, 4_000, 400, [own(11, 0, 1_000), own(1, 500, 1_000)], {}, 0, lambda s: s == addr(11))
    assert allocation.accepted == ()
    assert allocation.clearing_price == 0
    assert allocation.control_sites == ()


def test_tranche_one_stacks_on_a_fully_accepted_tranche_zero():
    # cap 5_000, ceiling 250. Offers:
    #   d1: t0 1_000 @100, t1 500 @150
    #   d2: t0 2_000 @120, t1 1_000 @130
    #   d3: t1 only, 800 @110                       (no tranche 0: never accepted)
    #   d6: t0 1_000 @140, t1 600 @90               (t1 cheaper than t0: reached first, passed over)
    #   d4: t0 3_000 @200
    # merit order: d6t1 90, d1t0 100, d3t1 110, d2t0 120, d2t1 130, d6t0 140, d1t1 150, d4t0 200.
    # walk: d6t1 passed over (d6's t0 not accepted yet); d1t0 1_000 (rem 4_000); d3t1 passed over;
    # d2t0 2_000 (rem 2_000); d2t1 1_000 (rem 1_000, its t0 is in full); d6t0 1_000 (rem 0); stop.
    # acceptances: d1 1_000, d2 2_000 + 1_000 = 3_000, d6 1_000; clearing price 140.
    offers = [
        own(1, 100, 1_000), own(1, 150, 500, 1),
        own(2, 120, 2_000), own(2, 130, 1_000, 1),
        own(3, 110, 800, 1),
        own(6, 140, 1_000), own(6, 90, 600, 1),
        own(4, 200, 3_000),
    ]
    allocation = clear(8, 5_000, 250, offers, {}, 0, nobody)
    assert watts_of(allocation) == {addr(1): 1_000, addr(2): 3_000, addr(6): 1_000}
    assert allocation.clearing_price == 140
    assert allocation.accepted_w == 5_000


def test_tranche_one_is_not_accepted_after_a_partial_tranche_zero():
    # cap 1_500: d1 t0 2_000 @100 is the marginal offer, accepted for 1_500; clearing stops, so its
    # t1 @100 (same price, ordered right after it) is not accepted: d1 sheds 1_500, not more.
    allocation = clear(9, 1_500, 100, [own(1, 100, 2_000), own(1, 100, 700, 1)], {}, 0, nobody)
    assert watts_of(allocation) == {addr(1): 1_500}


def test_nothing_offered():
    allocation = clear(10, 5_000, 100, [], {}, DEFAULT_MARGIN_BPS, nobody)
    assert allocation.accepted == ()
    assert allocation.accepted_w == 0
    assert allocation.clearing_price == 0
    assert allocation.cap_w == 5_500  # 5_000 * 11_000 // 10_000
    assert allocation.control_sites == ()
    assert allocation.root() == ZERO
    assert allocation.acceptance(addr(1)) is None
    with pytest.raises(KeyError, match="no acceptance"):
        allocation.proof(addr(1))


def test_zero_target_accepts_nothing():
    allocation = clear(10, 0, 100, [own(1, 0, 1)], {}, MAX_MARGIN_BPS, nobody)
    assert (allocation.cap_w, allocation.accepted, allocation.root()) == (0, (), ZERO)


def test_order_of_offers_and_reliability_and_address_casing_do_not_matter():
    offers = [own(n, 100 + (n % 3) * 10, 1_000 + n) for n in range(1, 12)] + [own(n, 150, 300, 1) for n in range(1, 12)]
    reliability = {addr(n): Reliability(n * 90, n * 100) for n in range(1, 12, 2)}
    first = clear(11, 8_000, 200, offers, reliability, 500, lambda s: s == addr(4))
    shuffler = random.Random(1)
    for _ in range(5):
        shuffled = offers[:]
        shuffler.shuffle(shuffled)
        lowered = [Offer(o.site.lower(), o.device.lower(), o.tranche, o.watts, o.price) for o in shuffled]
        keys = list(reliability)
        shuffler.shuffle(keys)
        mapping = {k.lower(): reliability[k] for k in keys}
        again = clear(11, 8_000, 200, lowered, mapping, 500, lambda s: s == addr(4))
        assert again == first
        assert again.root() == first.root()


@pytest.mark.parametrize(
    "offer, message",
    [
        (own(1, 100, 0), "watts must be > 0"),
        (own(1, 100, -5), "watts must be > 0"),
        (own(1, -1, 100), "price must be an integer >= 0"),
        (own(1, 100, 100, 2), "tranche must be 0 or 1"),
        (Offer("0x1234", addr(1), 0, 100, 100), "must be addresses"),
        (Offer(addr(1), addr(1), 0, 100, 1.5), "price must be an integer"),  # a float never decides an amount
    ],
)
def test_bad_offers_are_rejected_with_the_reason(offer, message):
    with pytest.raises(ValueError, match=message):
        clear(1, 1_000, 100, [offer], {}, 0, nobody)


def test_duplicate_tranche_and_device_under_two_sites_are_rejected():
    with pytest.raises(ValueError, match="duplicate offer"):
        clear(1, 1_000, 100, [own(0xABC, 100, 100), Offer(addr(0xABC).lower(), addr(0xABC).lower(), 0, 50, 90)], {}, 0, nobody)
    with pytest.raises(ValueError, match="two sites"):
        clear(1, 1_000, 100, [Offer(addr(8), addr(1), 0, 100, 100), Offer(addr(9), addr(1), 1, 100, 100)], {}, 0, nobody)


def test_bad_parameters_are_rejected():
    with pytest.raises(ValueError, match="margin_bps"):
        clear(1, 1_000, 100, [], {}, MAX_MARGIN_BPS + 1, nobody)
    with pytest.raises(ValueError, match="target_w"):
        clear(1, -1, 100, [], {}, 0, nobody)
    with pytest.raises(ValueError, match="ceiling"):
        clear(1, 1_000, -1, [], {}, 0, nobody)
    with pytest.raises(ValueError, match=">= 0 Wh"):
        clear(1, 1_000, 100, [own(1, 1, 1)], {addr(1): Reliability(-1, 10)}, 0, nobody)
    with pytest.raises(ValueError, match="two different reliability records"):
        clear(1, 1_000, 100, [], {addr(0xABC): Reliability(1, 10), addr(0xABC).lower(): Reliability(2, 10)}, 0, nobody)


def test_reliability_ratio():
    assert Reliability(0, 0).ratio() == 1  # no record ranks as a perfect record
    assert Reliability(800, 1_000).ratio() == Fraction(4, 5)
    assert Reliability(1_200, 1_000).ratio() == Fraction(6, 5)  # the record is exact; ranking caps it at 1


# --- the over-procurement margin ------------------------------------------------------------


def test_margin_rule():
    assert margin_bps_from_history([]) == DEFAULT_MARGIN_BPS == 1_000  # no history: 10 %
    assert margin_bps_from_history([Reliability(0, 0)]) == 1_000  # requests with nothing accepted: no record
    # 80 % delivery: 1_000 * 10_000 // 800 - 10_000 = 12_500 - 10_000 = 2_500
    assert margin_bps_from_history([Reliability(800, 1_000)]) == 2_500
    # over-delivery: 1_000 * 10_000 // 1_200 - 10_000 = 8_333 - 10_000 < 0 -> clamped to 0
    assert margin_bps_from_history([Reliability(1_200, 1_000)]) == 0
    # exact delivery: 0
    assert margin_bps_from_history([Reliability(1_000, 1_000)]) == 0
    # 50 % delivery: 20_000 - 10_000 = 10_000 -> clamped to 5_000
    assert margin_bps_from_history([Reliability(500, 1_000)]) == MAX_MARGIN_BPS == 5_000
    # nothing delivered of something accepted: the limit of the rule, the clamp 5_000
    assert margin_bps_from_history([Reliability(0, 1_000)]) == 5_000
    # floor: 1_000 * 10_000 // 900 = 11_111 (11_111.1...) -> 1_111
    assert margin_bps_from_history([Reliability(900, 1_000)]) == 1_111
    # sums over the requests, not a mean of ratios: (1_000 + 1_000) * 10_000 // (900 + 700) = 12_500 -> 2_500
    # (the mean of 1_000/900 - 1 and 1_000/700 - 1 would be 2_698)
    assert margin_bps_from_history([Reliability(900, 1_000), Reliability(700, 1_000)]) == 2_500
    # weighted by energy: 3_000 accepted, 2_900 delivered: 30_000_000 // 2_900 = 10_344 -> 344
    assert margin_bps_from_history([Reliability(900, 1_000), Reliability(2_000, 2_000)]) == 344
    with pytest.raises(ValueError, match=">= 0 Wh"):
        margin_bps_from_history([Reliability(-1, 1_000)])


# --- the allocation tree --------------------------------------------------------------------


def reference_leaf(request_id: int, device: str, watts: int, price: int) -> bytes:
    """StandardMerkleTree's leaf hash, from eth_abi: keccak256(keccak256(abi.encode(values)))."""
    return keccak(keccak(encode(["uint256", "address", "uint256", "uint256"], [request_id, device, watts, price])))


def reference_tree(leaf_hashes: list[bytes]) -> tuple[bytes, dict[bytes, list[bytes]]]:
    """StandardMerkleTree's layout, written out plainly: an array of 2n - 1 nodes whose last n slots
    hold the leaf hashes sorted ascending from the end (the i-th smallest at slot 2n - 2 - i); node
    j's children are 2j + 1 and 2j + 2, and a parent is keccak of its two children, the smaller
    first. Returns the root and the proof (sibling path) of every leaf hash."""
    n = len(leaf_hashes)
    nodes: list[bytes] = [b""] * (2 * n - 1)
    ordered = sorted(leaf_hashes)
    for i, leaf in enumerate(ordered):
        nodes[2 * n - 2 - i] = leaf
    for j in reversed(range(n - 1)):
        left, right = nodes[2 * j + 1], nodes[2 * j + 2]
        nodes[j] = keccak(min(left, right) + max(left, right))
    proofs = {}
    for i, leaf in enumerate(ordered):
        j, path = 2 * n - 2 - i, []
        while j != 0:
            sibling = j - 1 if j % 2 == 0 else j + 1
            path.append(nodes[sibling])
            j = (j - 1) // 2
        proofs[leaf] = path
    return nodes[0], proofs


def allocation_of(n: int, request_id: int = 42) -> Allocation:
    """n accepted devices (each its own site, 1_000 + 7i W) cleared at 130: the last one offers at 130,
    the others below it."""
    offers = [own(0x1000 + 37 * i, 130 - 10 * (i % 4) if i < n - 1 else 130, 1_000 + 7 * i) for i in range(n)]
    allocation = clear(request_id, 10**9, 130, offers, {}, 0, nobody)
    assert len(allocation.accepted) == n
    assert allocation.clearing_price == 130
    return allocation


def test_leaf_types_and_leaf_hash_match_the_abi_encoding():
    assert ALLOCATION_LEAF_TYPES == ["uint256", "address", "uint256", "uint256"]
    device = addr(0xABCDEF)
    assert allocation_leaf_hash(3, device, 1_500, 270) == reference_leaf(3, device, 1_500, 270)
    assert allocation_leaf_hash(3, device.lower(), 1_500, 270) == reference_leaf(3, device, 1_500, 270)
    with pytest.raises(ValueError, match="accepted_w"):
        allocation_leaf_hash(3, device, -1, 270)


@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_tree_equals_standard_merkle_tree_layout(n):
    allocation = allocation_of(n)
    leaves = {reference_leaf(42, a.device, a.watts, 130): a for a in allocation.accepted}
    root, proofs = reference_tree(list(leaves))
    assert allocation.root() == root
    if n == 1:
        assert root == next(iter(leaves))  # one leaf: the root is the leaf hash, the proof empty
    for leaf, acceptance in leaves.items():
        assert allocation.proof(acceptance.device) == proofs[leaf]
    # depths in a complete tree of 2n - 1 nodes: n=1 [0], n=2 [1, 1], n=3 [1, 2, 2], n=5 [2, 2, 2, 3, 3]
    # (n=5: leaves at slots 4..8; slots 4, 5, 6 hang under nodes 1 and 2, slots 7 and 8 under node 3)
    expected_depths = {1: [0], 2: [1, 1], 3: [1, 2, 2], 5: [2, 2, 2, 3, 3]}[n]
    assert sorted(len(allocation.proof(a.device)) for a in allocation.accepted) == expected_depths


@pytest.mark.skipif(shutil.which("node") is None or not (REPO / "node_modules/@openzeppelin/merkle-tree").exists(),
                    reason="node and @openzeppelin/merkle-tree (npm ci) are needed for the reference tree")
def test_tree_equals_openzeppelin_merkle_tree_package():
    script = (
        "const {StandardMerkleTree}=require('@openzeppelin/merkle-tree');"
        "const leaves=JSON.parse(require('fs').readFileSync(0,'utf8'));"
        "const t=StandardMerkleTree.of(leaves,['uint256','address','uint256','uint256']);"
        "process.stdout.write(JSON.stringify({root:t.root,proofs:leaves.map((_,i)=>t.getProof(i))}));"
    )
    for n in (1, 2, 3, 5, 8):
        allocation = allocation_of(n, request_id=n)
        leaves = [[str(n), a.device, str(a.watts), "130"] for a in allocation.accepted]
        out = subprocess.run(["node", "-e", script], input=json.dumps(leaves), capture_output=True, text=True,
                             check=True, cwd=REPO, timeout=60)
        expected = json.loads(out.stdout)
        assert "0x" + allocation.root().hex() == expected["root"]
        for acceptance, proof in zip(allocation.accepted, expected["proofs"]):
            assert ["0x" + p.hex() for p in allocation.proof(acceptance.device)] == proof


def test_every_proof_verifies_and_a_tampered_leaf_does_not():
    allocation = allocation_of(5)
    root = allocation.root()
    for a in allocation.accepted:
        proof = allocation.proof(a.device)
        assert verify_acceptance(root, 42, a.device, a.watts, 130, proof)
        assert verify_acceptance(root, 42, a.device.lower(), a.watts, 130, proof)
        assert not verify_acceptance(root, 42, a.device, a.watts + 1, 130, proof)  # more watts than accepted
        assert not verify_acceptance(root, 42, a.device, a.watts, 131, proof)  # another price
        assert not verify_acceptance(root, 43, a.device, a.watts, 130, proof)  # another request
        assert not verify_acceptance(root, 42, addr(0xDEAD), a.watts, 130, proof)  # another device
        assert not verify_acceptance(root, 42, a.device, a.watts, 130, proof[:-1])  # a shortened proof
        assert not verify_acceptance(root, 42, a.device, a.watts, 130, [bytes(32)] + proof[1:])  # a forged sibling
        assert not verify_acceptance(keccak(b"other"), 42, a.device, a.watts, 130, proof)  # another root
    # malformed inputs are refused, never raised
    a = allocation.accepted[0]
    assert not verify_acceptance(root, 42, "0xnot-an-address", a.watts, 130, allocation.proof(a.device))
    assert not verify_acceptance(root, 42, a.device, a.watts, 130, [b"short"])
    assert not verify_acceptance(ZERO, 42, a.device, a.watts, 130, [])


def test_single_leaf_verifies_with_an_empty_proof():
    allocation = allocation_of(1)
    a = allocation.accepted[0]
    assert allocation.proof(a.device) == []
    assert allocation.root() == allocation_leaf_hash(42, a.device, a.watts, 130)
    assert verify_acceptance(allocation.root(), 42, a.device, a.watts, 130, [])


def test_allocation_rejects_inconsistent_contents():
    a1, a2 = Acceptance(addr(1), addr(1), 10), Acceptance(addr(2), addr(2), 20)
    Allocation(1, 5, 30, 30, 0, (a1, a2), ())
    with pytest.raises(ValueError, match="sorted"):
        Allocation(1, 5, 30, 30, 0, (a2, a1), ())
    with pytest.raises(ValueError, match="sum"):
        Allocation(1, 5, 31, 40, 0, (a1, a2), ())
    with pytest.raises(ValueError, match="exceeds cap_w"):
        Allocation(1, 5, 30, 29, 0, (a1, a2), ())
