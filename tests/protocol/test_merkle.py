"""protocol.merkle builds the same tree as OpenZeppelin's StandardMerkleTree (npm reference)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from eth_utils import keccak, to_checksum_address
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocol.merkle import RewardLeaf, RewardsTree, hash_pair, process_proof

REPO = Path(__file__).resolve().parents[2]

addresses = st.binary(min_size=20, max_size=20).map(lambda b: to_checksum_address(b))
leaves_strategy = st.lists(
    st.builds(RewardLeaf, account=addresses, token=addresses, amount=st.integers(0, 2**256 - 1)),
    min_size=1,
    max_size=40,
    unique_by=lambda leaf: (leaf.account, leaf.token, leaf.amount),
)


def reference_tree(leaves: list[RewardLeaf]) -> dict:
    """Root and proofs (in input order) from @openzeppelin/merkle-tree."""
    payload = json.dumps([[leaf.account, leaf.token, str(leaf.amount)] for leaf in leaves])
    out = subprocess.run(
        ["node", str(REPO / "toolchain" / "oz-merkle.js")], input=payload, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(leaves_strategy)
def test_root_and_proofs_match_openzeppelin(leaves):
    tree = RewardsTree(leaves)
    expected = reference_tree(leaves)
    assert "0x" + tree.root.hex() == expected["root"]
    for leaf, proof in zip(leaves, expected["proofs"]):
        assert ["0x" + p.hex() for p in tree.proof(leaf)] == proof
        assert process_proof(leaf.hash(), tree.proof(leaf)) == tree.root


def test_leaf_hash_is_double_keccak_of_abi_encoding():
    leaf = RewardLeaf("0x" + "11" * 20, "0x" + "22" * 20, 5)
    encoded = bytes(12) + bytes.fromhex("11" * 20) + bytes(12) + bytes.fromhex("22" * 20) + (5).to_bytes(32, "big")
    assert leaf.hash() == keccak(keccak(encoded))


def test_two_leaves_root_is_sorted_pair_hash():
    a = RewardLeaf("0x" + "11" * 20, "0x" + "22" * 20, 5)
    b = RewardLeaf("0x" + "33" * 20, "0x" + "22" * 20, 7)
    low, high = sorted([a.hash(), b.hash()])
    assert RewardsTree([a, b]).root == keccak(low + high) == hash_pair(high, low)


def test_empty_and_duplicate_leaves_are_rejected():
    leaf = RewardLeaf("0x" + "11" * 20, "0x" + "22" * 20, 5)
    with pytest.raises(ValueError, match="at least one leaf"):
        RewardsTree([])
    with pytest.raises(ValueError, match="duplicate leaf"):
        RewardsTree([leaf, leaf])


def test_proof_of_unknown_leaf_is_a_key_error():
    tree = RewardsTree([RewardLeaf("0x" + "11" * 20, "0x" + "22" * 20, 5)])
    with pytest.raises(KeyError):
        tree.proof(RewardLeaf("0x" + "11" * 20, "0x" + "22" * 20, 6))


@settings(max_examples=50, deadline=None)
@given(account=addresses, token=addresses, amount=st.integers(0, 2**256 - 1))
def test_fast_leaf_hash_equals_eth_abi_encoding(account, token, amount):
    from eth_abi import encode

    assert RewardLeaf(account, token, amount).hash() == keccak(
        keccak(encode(["address", "address", "uint256"], [account, token, amount]))
    )
