"""Before `node register` sends anything: does the owner hold what registering costs?

Registering costs gas (ETH) for each device's registration, and, with `stake_per_kw`, the device
bond in the protocol token (NEGA): what `Staking.requiredBond(capacity)` asks for the node's
flexible capacity (ceil(W x bondPerKW / 1000), the contract's rule, read from the chain) beyond
what the owner has bonded already. The gas is each transaction's estimate with the margin the
node's Transactor adds (protocol.chain), at the fee it will offer (twice the base fee plus the
priority fee, as web3 fills it); the stake call cannot be estimated before its approval is mined,
so it is counted at `STAKE_GAS`.

The rule: if the owner is short of either, nothing is sent, and the error names the address, how
much of what it needs and has, in token units (protocol.units.format_units, symbol and decimals
read from the token contract), and what to run on a devnet (`negawatt devnet fund` with the
amounts missing; its run folder is the manifest's when a network.json lies beside it).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.network_profile import PROFILE_FILE
from protocol.units import format_units

ETH_DECIMALS = 18
STAKE_GAS = 150_000  # Staking.stake, counted before its approval exists (it uses about 60k)
# A call that depends on an earlier one of the same registration (a device registered at its site
# before the site meter's own registration is mined) cannot be estimated yet: it reverts NotASite.
# It is counted at this bound instead (registerAtSite uses about 68k).
DEPENDENT_CALL_GAS = 150_000
DEVNET_CHAIN_IDS = frozenset({31_337})  # anvil's chain id: `negawatt devnet up`'s chain


class FundsError(RuntimeError):
    """The owner cannot pay for registering; the message names the address, amounts and the fix."""


@dataclass(frozen=True)
class Shortfall:
    """One asset the owner lacks: how much it needs and has (base units), and what for."""

    symbol: str
    decimals: int
    needed: int
    has: int
    purpose: str

    def describe(self) -> str:
        """e.g. `0.0042 ETH for gas (has 0 ETH)`."""
        return (f"{format_units(self.needed, self.decimals, self.symbol)} {self.purpose} "
                f"(has {format_units(self.has, self.decimals, self.symbol)})")


def gas_limit(estimate: int) -> int:
    """The gas limit the node's Transactor sets for an estimate (protocol.chain.Transactor.send)."""
    return int(estimate * 1.2) + 10_000


def fee_per_gas(web3: Any) -> int:
    """The most the node pays per gas: twice the latest base fee plus the priority fee."""
    base = web3.eth.get_block("latest").get("baseFeePerGas")
    if base is None:  # a chain without EIP-1559
        return int(web3.eth.gas_price)
    return 2 * int(base) + int(web3.eth.max_priority_fee)


def token_units(token: Any) -> tuple[str, int]:
    """(symbol, decimals) of an ERC-20 contract, read from it."""
    return str(token.functions.symbol().call()), int(token.functions.decimals().call())


def _estimate(call: Any, owner: str) -> int:
    """The gas estimate of `call`, or DEPENDENT_CALL_GAS when it reverts because an earlier call of
    the same registration is not mined yet."""
    from web3.exceptions import ContractLogicError  # custom errors (NotASite) are a subclass

    try:
        return int(call.estimate_gas({"from": owner}))
    except ContractLogicError:
        return DEPENDENT_CALL_GAS


def shortfalls(web3: Any, owner: str, calls: list[Any], token: Any, bond_missing: int,
               spender: str | None = None) -> list[Shortfall]:
    """What `owner` lacks to send `calls` and then bond `bond_missing` more tokens (approve + stake
    to `spender`). `calls` are prepared contract calls, in the order they will be sent."""
    gas = sum(gas_limit(_estimate(call, owner)) for call in calls)
    symbol, decimals = token_units(token)
    if bond_missing > 0:
        gas += gas_limit(token.functions.approve(spender, bond_missing).estimate_gas({"from": owner}))
        gas += gas_limit(STAKE_GAS)
    short = []
    eth_needed, eth_has = gas * fee_per_gas(web3), int(web3.eth.get_balance(owner))
    if gas and eth_has < eth_needed:
        short.append(Shortfall("ETH", ETH_DECIMALS, eth_needed, eth_has, "for gas"))
    tokens = int(token.functions.balanceOf(owner).call())
    if tokens < bond_missing:
        short.append(Shortfall(symbol, decimals, bond_missing, tokens, "for the device bond"))
    return short


def top_up(item: Shortfall, places: int = 4) -> str:
    """What is missing of `item` in token units, rounded up to `places` decimals (for a command)."""
    step = 10 ** max(0, item.decimals - places)
    missing = -(-(item.needed - item.has) // step) * step
    return format_units(missing, item.decimals)


def funding_error(owner: str, short: list[Shortfall], chain_id: int, bond_rule: str = "",
                  run_dir: Path | None = None) -> FundsError:
    """The one-line error for `short`: who needs how much of what, and what to run (on a devnet,
    `negawatt devnet fund` with the amounts missing and the devnet's run folder, when known)."""
    needs = " and ".join(item.describe() for item in short)
    flags = " ".join(f"--{item.symbol.lower()} {top_up(item)}" for item in short)
    if chain_id in DEVNET_CHAIN_IDS:
        fix = f"on a devnet run `negawatt devnet fund {owner} {flags} --run-dir {run_dir or 'RUN_DIR'}`"
    else:
        fix = "send them to that address"
    rule = f" ({bond_rule})" if bond_rule else ""
    return FundsError(f"{owner} cannot register yet: it needs {needs}{rule}; {fix}, then run `negawatt node "
                      f"register` again")


def devnet_run_dir(manifest: Path) -> Path | None:
    """The devnet run folder a manifest belongs to (`negawatt devnet up` writes manifest.json and
    network.json side by side), or None."""
    folder = Path(manifest).parent
    return folder if (folder / PROFILE_FILE).is_file() else None
