"""Claims: fetch the owner's cumulative rewards and proofs from the oracles, claim what is unclaimed.

A proof is only used if it is for the RewardDistributor's current root (an oracle behind, or
lying, is skipped). `negawatt node claim` claims on demand; the node claims by itself when the
unclaimed value is worth the gas: sum over tokens of unclaimed * value_wei_per_unit >=
gas_multiple * estimated gas * gas price.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httpx

from protocol.chain import Receipt, Transactor

log = logging.getLogger("negawatt.node.claims")


@dataclass(frozen=True)
class Claimable:
    """One token the owner can claim: its cumulative amount, proof and what is still unclaimed."""

    token: str
    cumulative: int
    proof: tuple[bytes, ...]
    unclaimed: int


def fetch_rewards(oracles: list[str], account: str, root: bytes, timeout: float = 10.0) -> list[dict] | None:
    """The account's rewards from the first oracle whose published root is `root` (None if none is)."""
    for url in oracles:
        try:
            response = httpx.get(f"{url.rstrip('/')}/v1/rewards/{account}", timeout=timeout)
        except httpx.HTTPError as error:
            log.info("oracle %s unreachable: %s", url, error)
            continue
        if response.status_code != 200:
            continue
        body = response.json()
        if str(body.get("root", "")).lower() == "0x" + root.hex():
            return body.get("rewards", [])
        log.info("oracle %s publishes root %s, the chain has 0x%s", url, body.get("root"), root.hex())
    return None


def claimable(distributor: Any, account: str, rewards: list[dict]) -> list[Claimable]:
    """What is left to claim per token (amounts beyond what the distributor already paid)."""
    items = []
    for reward in rewards:
        cumulative = int(reward["amount"])
        already = distributor.functions.claimed(account, reward["token"]).call()
        if cumulative > already:
            items.append(Claimable(reward["token"], cumulative, tuple(bytes.fromhex(p[2:]) for p in reward["proof"]),
                                   cumulative - already))
    return items


def claim_call(distributor: Any, account: str, items: list[Claimable]) -> Any:
    """The claimMany call for `items`."""
    return distributor.functions.claimMany(account, [i.token for i in items], [i.cumulative for i in items],
                                           [list(i.proof) for i in items])


def worth_claiming(web3: Any, distributor: Any, transactor: Transactor, account: str, items: list[Claimable],
                   value_wei_per_unit: dict[str, int], gas_multiple: int = 5) -> tuple[bool, str]:
    """Whether the unclaimed value pays for the gas `gas_multiple` times over, and why."""
    if not items:
        return False, "nothing to claim"
    gas = claim_call(distributor, account, items).estimate_gas({"from": transactor.address})
    cost = gas * web3.eth.gas_price
    value = sum(i.unclaimed * value_wei_per_unit.get(i.token, 0) for i in items)
    if value >= gas_multiple * cost:
        return True, f"unclaimed value {value} wei >= {gas_multiple} x gas cost {cost} wei"
    return False, f"unclaimed value {value} wei < {gas_multiple} x gas cost {cost} wei"


def claim(transactor: Transactor, distributor: Any, account: str, items: list[Claimable]) -> Receipt:
    """Claim every item in one transaction (funds go to `account`, whoever sends it)."""
    receipt = transactor.send(claim_call(distributor, account, items))
    log.info("claimed %s for %s in block %d", ", ".join(f"{i.unclaimed} of {i.token}" for i in items), account,
             receipt.block_number)
    return receipt
