"""One amount type for the whole API: a decimal string of token base units.

Rule: every token amount the API serves, in a REST body or in an SSE event's `args`, is a JSON
string of decimal digits (`"10400000000000000000"`), never a JSON number: a uint256 does not fit a
JavaScript number, and a field that is a number when small and a string when large cannot be typed.
Counts, identifiers, energy (Wh), power (W), basis points and times stay JSON numbers.
`GET /v1/tokens` gives each token's `decimals` and `symbol` (api.tokens).

`AMOUNT_ARGS` names, per (contract, event), the arguments that are token amounts; `amount_args`
turns them into strings in an event's decoded arguments (stored events keep their JSON as the
indexer wrote it, so the rule holds for events indexed before it existed).
`tests/api/test_api_amounts.py` checks the table against the contracts' ABIs: every uint128/uint256
argument is either listed here or an identifier.

Which token an event's amounts are in: Staking and OracleHub amounts (stake, slash, bonds,
emission) are in the stake token; FlexMarket amounts are in the request's `paymentToken`
(`GET /v1/requests/{id}`); `Claimed` names its `token`.
"""

from __future__ import annotations

from typing import Any

AMOUNT_ARGS: dict[tuple[str, str], frozenset[str]] = {key: frozenset(names) for key, names in {
    ("FlexMarket", "RequestOpened"): ("pricePerKWh", "maxBudget"),
    ("FlexMarket", "RequestAvailability"): ("availabilityPricePerKWh",),
    ("FlexMarket", "AllocationPosted"): ("clearingPrice", "availabilityPrice"),
    ("FlexMarket", "RequestCancelled"): ("refund",),
    ("FlexMarket", "RequestExpired"): ("refund",),
    ("FlexMarket", "RequestSettling"): ("payout",),
    ("FlexMarket", "RequestSettled"): ("payout", "refund"),
    ("FlexMarket", "OwedPaid"): ("amount",),
    ("FlexMarket", "TransferDeferred"): ("amount",),
    ("OracleHub", "ChallengeParamsSet"): ("bond", "oracleSlashAmount"),
    ("OracleHub", "ChallengeResolved"): ("slashed", "reward"),
    ("OracleHub", "EmissionBudgetSet"): ("budget",),
    ("OracleHub", "MinOracleBondSet"): ("minOracleBond",),
    ("OracleHub", "PenaltyApplied"): ("amount", "slashed"),
    ("OracleHub", "ReportChallenged"): ("bond",),
    ("OracleHub", "ReportFinalized"): ("emission",),
    ("RewardDistributor", "Claimed"): ("amount", "cumulativeClaimed"),
    ("Staking", "BondPerKWSet"): ("bondPerKW",),
    ("Staking", "DebtPaid"): ("amount", "debt"),
    ("Staking", "DebtRecorded"): ("shortfall", "debt"),
    ("Staking", "LockSet"): ("amount",),
    ("Staking", "Slashed"): ("amount", "requested", "bonded", "unbonding"),
    ("Staking", "Staked"): ("amount", "bonded"),
    ("Staking", "UnstakeRequested"): ("amount", "unbonding"),
    ("Staking", "Withdrawn"): ("amount",),
    ("NegawattToken", "Transfer"): ("value",),
    ("NegawattToken", "Approval"): ("value",),
}.items()}

NESTED_AMOUNTS: dict[tuple[str, str], dict[str, frozenset[str]]] = {
    # ReportSubmitted carries the report struct and its penalties: their amounts are strings too
    ("OracleHub", "ReportSubmitted"): {"report": frozenset({"emission"}), "penalties": frozenset({"amount"})},
}
"""Amounts inside struct (or struct array) arguments, by argument name."""

IDENTIFIER_ARGS = frozenset({"requestId", "index", "epoch"})
"""uint arguments that number things rather than measure tokens (they stay JSON numbers when small)."""


def _stringify(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return str(value)
    return value  # already a decimal string (json_safe turned a big one into one)


def _struct(value: Any, names: frozenset[str]) -> Any:
    if isinstance(value, list):
        return [_struct(item, names) for item in value]
    if isinstance(value, dict):
        return {key: _stringify(item) if key in names else item for key, item in value.items()}
    return value


def amount_args(contract: str, event: str, args: dict[str, Any]) -> dict[str, Any]:
    """`args` of `contract`'s `event` with every token amount as a decimal string."""
    names = AMOUNT_ARGS.get((contract, event))
    nested = NESTED_AMOUNTS.get((contract, event))
    if names is None and nested is None:
        return args
    out = dict(args)
    for name in names or ():
        if name in out:
            out[name] = _stringify(out[name])
    for name, inner in (nested or {}).items():
        if name in out:
            out[name] = _struct(out[name], inner)
    return out
