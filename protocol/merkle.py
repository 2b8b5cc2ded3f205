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

from eth_utils import keccak

LEAF_TYPES = ["address", "address", "uint256"]  # the StandardMerkleTree leaf encoding


@dataclass(frozen=True)
class RewardLeaf:
    """One account's cumulative total of one token."""

    account: str
    token: str
    amount: int

    def hash(self) -> bytes:
        """The StandardMerkleTree leaf hash (double keccak of the ABI encoding)."""
        return leaf_hash(self.account, self.token, self.amount)


def leaf_hash(account: str, token: str, amount: int) -> bytes:
    """keccak256(keccak256(abi.encode(address, address, uint256))).

    The three values are static ABI types, each one left-padded 32-byte word, so the encoding is
    built directly (eth_abi gives the same bytes, ten times slower; settlement hashes one leaf
    per account and token).
    """
    if not 0 <= amount < 2**256:
        raise ValueError(f"amount out of uint256 range: {amount}")
    encoded = _PAD + bytes.fromhex(account[2:]) + _PAD + bytes.fromhex(token[2:]) + amount.to_bytes(32, "big")
    if len(encoded) != 96:
        raise ValueError(f"not 20-byte addresses: {account}, {token}")
    return keccak(keccak(encoded))


_PAD = bytes(12)


def hash_pair(a: bytes, b: bytes) -> bytes:
    """keccak256 of two nodes in ascending order (OpenZeppelin's commutative pair hash)."""
    return keccak(a + b) if a < b else keccak(b + a)


class RewardsTree:
    """A StandardMerkleTree over reward leaves, with a proof for every leaf.

    Memory: the nodes are one contiguous buffer of 32-byte hashes, 64 bytes per leaf in all (the
    2n - 1 nodes), and no per-leaf Python objects are kept: a leaf's position is found by binary
    search of its hash among the sorted leaf hashes, which sit in the last n nodes in descending
    order.
    """

    def __init__(self, leaves: list[RewardLeaf]):
        if not leaves:
            raise ValueError("a rewards tree needs at least one leaf")
        hashed = sorted(leaf_hash(*_key(leaf)) for leaf in leaves)
        for h1, h2 in zip(hashed, hashed[1:]):
            if h1 == h2:
                raise ValueError(f"duplicate leaf {next(_key(x) for x in leaves if x.hash() == h1)}")
        n = len(hashed)
        size = 2 * n - 1
        # leaf i (ascending hash) sits at node size - 1 - i, so the last n nodes are the reversed list
        hashed.reverse()
        nodes = bytearray(_NODE * (size - n)) + b"".join(hashed)
        del hashed
        for i in range(size - 1 - n, -1, -1):
            left = bytes(nodes[(2 * i + 1) * _NODE : (2 * i + 2) * _NODE])
            right = bytes(nodes[(2 * i + 2) * _NODE : (2 * i + 3) * _NODE])
            nodes[i * _NODE : (i + 1) * _NODE] = hash_pair(left, right)
        self._nodes = bytes(nodes)
        self._size = size
        self._leaves = n

    def _node(self, index: int) -> bytes:
        return self._nodes[index * _NODE : (index + 1) * _NODE]

    @property
    def root(self) -> bytes:
        """The 32-byte root the OracleHub installs."""
        return self._node(0)

    def __len__(self) -> int:
        return self._leaves

    def _index(self, leaf: RewardLeaf) -> int | None:
        """The node index of `leaf`, or None: binary search of its hash (leaf i at size - 1 - i)."""
        target = leaf_hash(*_key(leaf))
        lo, hi = 0, self._leaves
        while lo < hi:
            mid = (lo + hi) // 2
            if self._node(self._size - 1 - mid) < target:
                lo = mid + 1
            else:
                hi = mid
        if lo < self._leaves and self._node(self._size - 1 - lo) == target:
            return self._size - 1 - lo
        return None

    def proof(self, leaf: RewardLeaf) -> list[bytes]:
        """Sibling hashes from `leaf` up to the root."""
        index = self._index(leaf)
        if index is None:
            raise KeyError(f"not a leaf of this tree: {leaf}")
        path = []
        while index > 0:
            path.append(self._node(index + 1 if index % 2 == 1 else index - 1))
            index = (index - 1) // 2
        return path


_NODE = 32  # bytes per node hash


def _key(leaf: RewardLeaf) -> tuple[str, str, int]:
    """The leaf with addresses in one case, so lookups do not depend on checksum casing."""
    return (_address(leaf.account), _address(leaf.token), int(leaf.amount))


def _address(value: str) -> str:
    if not (isinstance(value, str) and len(value) == 42 and value[:2] in ("0x", "0X")):
        raise ValueError(f"not an address: {value!r}")
    return "0x" + value[2:].lower()


def process_proof(leaf_hash: bytes, proof: list[bytes]) -> bytes:
    """The root a proof leads to from a leaf hash (what MerkleProof.processProof computes)."""
    node = leaf_hash
    for sibling in proof:
        node = hash_pair(node, sibling)
    return node
