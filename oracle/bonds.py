"""Bond cover: a commitment counts only when its owner's bond covers it (audit M-4).

The rule, the same for every oracle:

    an owner's devices committed to one request earn (and risk penalties) only if the owner's stake
    bonded above its lock reaches Staking.requiredBond(sum of those devices' committed watts),
    that is ceil(watts * bondPerKW / 1000).

Otherwise every one of the owner's devices in that request is ineligible with reason
`bond_insufficient`: it earns nothing and pays no penalty, so a penalty can never exceed the bond
that stood behind the commitment. The stake above the lock is what `Staking.slash` can take for a
penalty; an oracle's locked operating bond covers no commitment.

Where the stakes come from: each oracle reads them at its chain view's cursor
(`bond_book_from_view`: the Staking events the view indexed up to its last confirmed block, the
same block its devices and requests are read at), not at the chain's latest block. The book is a
function of that block alone, so peers whose views stand at the same confirmed block compute the
same book and sign the same digest; peers whose cursors straddle a stake change compute different
reports and the proposal is simply retried at the next tick, when their views have caught up.
`read_bond_book` (eth_calls of bondedOf and lockedOf per owner, at the latest block) is the
reference the view's book is tested against; the settlement no longer calls it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from eth_utils import to_checksum_address

BOND_INSUFFICIENT = "bond_insufficient"


@dataclass(frozen=True)
class BondBook:
    """Each owner's stake available to cover commitments, and the bond asked per committed kW."""

    bond_per_kw: int
    available: Mapping[str, int]

    def required(self, watts: int) -> int:
        """Staking.requiredBond: the bond `watts` of commitment needs, rounded up."""
        return (watts * self.bond_per_kw + 999) // 1000

    def covers(self, owner: str, watts: int) -> bool:
        """Whether `owner`'s available stake covers committing `watts` in one request."""
        return self.available.get(owner.lower(), 0) >= self.required(watts)


def bond_book_from_view(view: Any, owners: Iterable[str]) -> BondBook:
    """The bond book of `owners` at the chain view's cursor (oracle.chain_view.ChainView.stakes):
    no JSON-RPC call per owner, so the book of 100,000 owners costs dictionary lookups, not
    thousands of eth_calls. Equal to `read_bond_book` at the same block."""
    stakes = view.stakes(owners)
    available = {owner: max(0, bonded - locked) for owner, (bonded, locked) in stakes.of.items()}
    return BondBook(stakes.bond_per_kw, available)


def read_bond_book(staking: Any, owners: Iterable[str], batch_size: int = 500) -> BondBook:
    """The bond book of `owners` as the Staking contract holds it now (bonded above the lock), read
    with eth_calls: the reference for `bond_book_from_view`.

    The reads go in JSON-RPC batches of `batch_size` owners (two calls each): one round trip per
    batch instead of two per owner, which at 100,000 owners is the difference between seconds and
    half an hour."""
    ordered = sorted({o.lower() for o in owners})
    available: dict[str, int] = {}
    for lo in range(0, len(ordered), batch_size):
        chunk = ordered[lo:lo + batch_size]
        values = _read_pairs(staking, [to_checksum_address(owner) for owner in chunk])
        for owner, (bonded, locked) in zip(chunk, values):
            available[owner] = max(0, bonded - locked)
    return BondBook(staking.functions.bondPerKW().call(), available)


def _read_pairs(staking: Any, addresses: list[str]) -> list[tuple[int, int]]:
    """(bondedOf, lockedOf) of each address, in one JSON-RPC batch when the provider has them."""
    web3 = getattr(staking, "w3", None)
    if web3 is not None and hasattr(web3, "batch_requests"):
        with web3.batch_requests() as batch:
            for address in addresses:
                batch.add(staking.functions.bondedOf(address))
                batch.add(staking.functions.lockedOf(address))
            answers = batch.execute()
        return [(int(answers[2 * i]), int(answers[2 * i + 1])) for i in range(len(addresses))]
    return [(staking.functions.bondedOf(a).call(), staking.functions.lockedOf(a).call()) for a in addresses]
