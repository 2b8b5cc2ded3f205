"""Bond cover: a commitment counts only when its owner's bond covers it (audit M-4).

The rule, the same for every oracle:

    an owner's devices committed to one request earn (and risk penalties) only if the owner's stake
    bonded above its lock reaches Staking.requiredBond(sum of those devices' committed watts),
    that is ceil(watts * bondPerKW / 1000).

Otherwise every one of the owner's devices in that request is ineligible with reason
`bond_insufficient`: it earns nothing and pays no penalty, so a penalty can never exceed the bond
that stood behind the commitment. The stake above the lock is what `Staking.slash` can take for a
penalty; an oracle's locked operating bond covers no commitment. Each oracle reads the stakes when
it computes; peers that read across a stake change compute different reports and the proposal is
simply retried at the next tick.
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


def read_bond_book(staking: Any, owners: Iterable[str]) -> BondBook:
    """The bond book of `owners` as the Staking contract holds it now (bonded above the lock)."""
    available = {}
    for owner in sorted({o.lower() for o in owners}):
        address = to_checksum_address(owner)
        bonded = staking.functions.bondedOf(address).call()
        locked = staking.functions.lockedOf(address).call()
        available[owner] = max(0, bonded - locked)
    return BondBook(staking.functions.bondPerKW().call(), available)
