"""JSON in and out for `negawatt merkle build`: validates the leaf list and returns root and proofs."""

from __future__ import annotations

from typing import Any

from eth_utils import is_address, to_checksum_address

from protocol.merkle import RewardLeaf, RewardsTree


def parse_leaves(raw: Any) -> list[RewardLeaf]:
    """Validate a JSON list of {"account", "token", "amount"} (amount a decimal string)."""
    if not isinstance(raw, list) or not raw:
        raise ValueError("expected a non-empty JSON list of leaves")
    leaves = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict) or set(item) != {"account", "token", "amount"}:
            raise ValueError(f"leaf {index}: expected exactly the keys account, token, amount")
        for key in ("account", "token"):
            if not isinstance(item[key], str) or not is_address(item[key]):
                raise ValueError(f"leaf {index}: {key} is not an address: {item[key]!r}")
        amount = item["amount"]
        if not isinstance(amount, str) or not amount.isdigit():
            raise ValueError(f"leaf {index}: amount must be a decimal string of digits, got {amount!r}")
        value = int(amount)
        if value >= 2**256:
            raise ValueError(f"leaf {index}: amount does not fit in uint256")
        leaves.append(RewardLeaf(to_checksum_address(item["account"]), to_checksum_address(item["token"]), value))
    return leaves


def build_from_json(raw: Any) -> dict[str, Any]:
    """Root and per-leaf proofs, leaves in input order, as `negawatt merkle build` prints them."""
    leaves = parse_leaves(raw)
    tree = RewardsTree(leaves)
    return {
        "root": "0x" + tree.root.hex(),
        "leaves": [
            {
                "account": leaf.account,
                "token": leaf.token,
                "amount": str(leaf.amount),
                "proof": ["0x" + node.hex() for node in tree.proof(leaf)],
            }
            for leaf in leaves
        ],
    }
