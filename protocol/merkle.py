"""The cumulative rewards Merkle tree, laid out as OpenZeppelin's StandardMerkleTree.

Leaves are (address account, address token, uint256 cumulativeAmount). A leaf's hash is
keccak256(keccak256(abi.encode(account, token, cumulativeAmount))); leaf hashes are sorted
ascending, placed at the end of a complete binary tree in array form, and each parent is the
keccak256 of its two children in sorted order. So the root and proofs equal those of
`StandardMerkleTree.of(leaves, ["address", "address", "uint256"])`, and RewardDistributor (OpenZeppelin
MerkleProof) accepts the proofs.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi import encode
from eth_utils import keccak, to_checksum_address

LEAF_TYPES = ["address", "address", "uint256"]


@dataclass(frozen=True)
class RewardLeaf:
    """One account's cumulative total of one token."""

    account: str
    token: str
    amount: int

    def hash(self) -> bytes:
        """The StandardMerkleTree leaf hash (double keccak of the ABI encoding)."""
        return keccak(keccak(encode(LEAF_TYPES, [self.account, self.token, self.amount])))


def hash_pair(a: bytes, b: bytes) -> bytes:
    """keccak256 of two nodes in ascending order (OpenZeppelin's commutative pair hash)."""
    return keccak(a + b) if a < b else keccak(b + a)


class RewardsTree:
    """A StandardMerkleTree over reward leaves, with a proof for every leaf."""

    def __init__(self, leaves: list[RewardLeaf]):
        if not leaves:
            raise ValueError("a rewards tree needs at least one leaf")
        normalized = [
            RewardLeaf(to_checksum_address(leaf.account), to_checksum_address(leaf.token), int(leaf.amount))
            for leaf in leaves
        ]
        for leaf in normalized:
            if leaf.amount < 0 or leaf.amount >= 2**256:
                raise ValueError(f"amount out of uint256 range for {leaf.account}: {leaf.amount}")
        hashed = sorted(((leaf.hash(), leaf) for leaf in normalized), key=lambda pair: pair[0])
        for (h1, l1), (h2, _) in zip(hashed, hashed[1:]):
            if h1 == h2:
                raise ValueError(f"duplicate leaf {l1}")
        size = 2 * len(hashed) - 1
        tree: list[bytes] = [b""] * size
        self._position: dict[RewardLeaf, int] = {}
        for i, (leaf_hash, leaf) in enumerate(hashed):
            tree[size - 1 - i] = leaf_hash
            self._position[leaf] = size - 1 - i
        for i in range(size - 1 - len(hashed), -1, -1):
            tree[i] = hash_pair(tree[2 * i + 1], tree[2 * i + 2])
        self._tree = tree
        self.leaves = [leaf for _, leaf in hashed]

    @property
    def root(self) -> bytes:
        """The 32-byte root the OracleHub installs."""
        return self._tree[0]

    def proof(self, leaf: RewardLeaf) -> list[bytes]:
        """Sibling hashes from `leaf` up to the root."""
        key = RewardLeaf(to_checksum_address(leaf.account), to_checksum_address(leaf.token), int(leaf.amount))
        if key not in self._position:
            raise KeyError(f"not a leaf of this tree: {leaf}")
        index = self._position[key]
        path = []
        while index > 0:
            sibling = index + 1 if index % 2 == 1 else index - 1
            path.append(self._tree[sibling])
            index = (index - 1) // 2
        return path


def process_proof(leaf_hash: bytes, proof: list[bytes]) -> bytes:
    """The root a proof leads to from a leaf hash (what MerkleProof.processProof computes)."""
    node = leaf_hash
    for sibling in proof:
        node = hash_pair(node, sibling)
    return node
