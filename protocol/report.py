"""The settlement report the oracles sign and the OracleHub verifies.

The report commits to its request payouts and stake penalties by hash, exactly as the contract
computes them: requestsHash = keccak256(abi.encode(RequestPayout[])) and penaltiesHash =
keccak256(abi.encode(Penalty[])); the arrays travel next to the report in the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from protocol import eip712

ZERO_ROOT = b"\x00" * 32
# Most requests (and most penalties) one report may carry: OracleHub.MAX_REPORT_ITEMS.
MAX_REPORT_ITEMS = 64


@dataclass(frozen=True)
class RequestPayout:
    """What one request pays into the distributor (payment-token base units)."""

    request_id: int
    payout: int


@dataclass(frozen=True)
class Penalty:
    """A stake slash for proven under-delivery (protocol-token base units)."""

    account: str
    amount: int


@dataclass(frozen=True)
class SettlementReport:
    """One epoch's settlement: the new cumulative rewards root, payouts, penalties and emission."""

    epoch: int
    previous_root: bytes
    rewards_root: bytes
    payouts: tuple[RequestPayout, ...] = field(default_factory=tuple)
    penalties: tuple[Penalty, ...] = field(default_factory=tuple)
    emission: int = 0

    @property
    def requests_hash(self) -> bytes:
        """keccak256(abi.encode(RequestPayout[])) over this report's payouts."""
        return keccak(encode(["(uint256,uint256)[]"], [self.payout_tuples()]))

    @property
    def penalties_hash(self) -> bytes:
        """keccak256(abi.encode(Penalty[])) over this report's penalties."""
        return keccak(encode(["(address,uint256)[]"], [self.penalty_tuples()]))

    def payout_tuples(self) -> list[tuple[int, int]]:
        """Payouts as ABI tuples (requestId, payout)."""
        return [(p.request_id, p.payout) for p in self.payouts]

    def penalty_tuples(self) -> list[tuple[str, int]]:
        """Penalties as ABI tuples (account, amount)."""
        return [(to_checksum_address(p.account), p.amount) for p in self.penalties]

    def as_tuple(self) -> tuple:
        """The SettlementReport struct as a contract call argument."""
        return (
            self.epoch,
            self.previous_root,
            self.rewards_root,
            self.requests_hash,
            self.penalties_hash,
            self.emission,
        )

    def message(self) -> dict:
        """The EIP-712 message fields."""
        return {
            "epoch": self.epoch,
            "previousRoot": self.previous_root,
            "rewardsRoot": self.rewards_root,
            "requestsHash": self.requests_hash,
            "penaltiesHash": self.penalties_hash,
            "emission": self.emission,
        }

    def digest(self, chain_id: int, hub_address: str) -> bytes:
        """The EIP-712 digest the OracleHub computes for this report (its id on-chain)."""
        return eip712.digest("SettlementReport", self.message(), chain_id, hub_address)

    def sign(self, private_key: bytes | str, chain_id: int, hub_address: str) -> bytes:
        """An oracle's 65-byte signature of this report for the OracleHub at `hub_address`."""
        return eip712.sign(private_key, "SettlementReport", self.message(), chain_id, hub_address)
