"""The settlement report document: what an oracle computed for an epoch, as every role reads it.

The oracle that computes an epoch stores, signs and serves one `ReportDocument`; the API verifies
and indexes it; nodes claim with the proofs it yields. It carries the signed fields (digest, epoch,
roots, hashes, emission), the arrays that travel with the on-chain report (payouts, penalties),
the cumulative ledger whose Merkle tree is the rewards root, and the per-request and per-device
results with their baseline records.

Rules:
- Amounts are decimal strings in JSON (JavaScript clients keep precision) and ints in Python.
- The stable form is `canonical_json()`: keys sorted, the same bytes on every oracle for the same
  settlement. The served form, `as_json()`, is the same object.
- `tree()` is built once per document and cached; `verify(onchain_root)` recomputes the root from
  the ledger (never trusting a root or proof the document states) and, given them, checks the
  digest and the requestsHash against the chain's.
- Version 1 is the document without a "version" field; a later version adds the field, and a
  reader refuses versions it does not know.
"""

from __future__ import annotations

import json
from functools import cached_property
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_serializer

from protocol.merkle import RewardLeaf, RewardsTree
from protocol.report import ZERO_ROOT, Penalty, RequestPayout, SettlementReport

DOCUMENT_VERSION = 1
MAX_AMOUNT_DIGITS = 78  # 2**256 has 78 decimal digits


def _amount(value: Any) -> int:
    """A uint256 from a decimal string (or an int); bounded before conversion."""
    if isinstance(value, bool):
        raise ValueError("an amount is a decimal string, not a boolean")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and 0 < len(value) <= MAX_AMOUNT_DIGITS and value.isascii() and value.isdigit():
        number = int(value)
    else:
        raise ValueError("an amount is a decimal string of at most 78 digits")
    if not 0 <= number < 2**256:
        raise ValueError("an amount must fit in uint256")
    return number


Amount = Annotated[int, BeforeValidator(_amount), PlainSerializer(str, return_type=str)]
Address = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{40}$")]  # kept as written: the signed bytes
Hash32 = Annotated[str, Field(pattern=r"^0x[0-9a-fA-F]{64}$")]
Count = Annotated[int, Field(ge=0, lt=2**64)]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PayoutEntry(_Part):
    """What one request pays into the distributor."""

    requestId: Annotated[int, Field(ge=0, lt=2**256)]
    payout: Amount


class PenaltyEntry(_Part):
    """A stake slash for proven under-delivery."""

    account: Address
    amount: Amount


class LedgerEntry(_Part):
    """One leaf of the rewards tree: an account's cumulative total of one token."""

    account: Address
    token: Address
    amount: Amount

    def leaf(self) -> RewardLeaf:
        """The Merkle leaf."""
        return RewardLeaf(self.account, self.token, self.amount)


class DeviceOutcome(_Part):
    """One committed device's result in one request."""

    device: Address
    owner: Address
    committedWh: Count
    deliveredWh: Count
    ratioBps: Count
    factorBps: Count
    payableWh: Count
    payout: Amount
    ownerPayout: Amount
    fee: Amount
    emission: Amount
    penalty: Amount
    eligible: bool
    reasons: list[str] = Field(max_length=64)
    flags: list[str] = Field(max_length=64)


class BaselineRecord(BaseModel):
    """A device's baseline, actual load and quality over an event, as the oracle computed them.

    The adjustment and quality objects are the baseline engine's own description; they are carried,
    not interpreted, by the other roles."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: Address
    committed_w: Count
    baseline_wh: list[int]
    actual_wh: list[int]
    curtailed_wh: list[int]
    adjustment: dict[str, Any]
    quality: dict[str, Any]
    eligible: bool
    reasons: list[str]
    flags: list[str]
    selected_days: list[str]


class RequestOutcome(_Part):
    """One settled request: escrow, what it paid and refunded, and its devices' results."""

    requestId: Annotated[int, Field(ge=0, lt=2**256)]
    paymentToken: Address
    escrow: Amount
    payout: Amount
    refund: Amount
    scaledToEscrow: bool
    deliveredWh: Count
    devices: list[DeviceOutcome]
    baselines: list[BaselineRecord] = Field(default_factory=list)
    verification: dict[str, Any] | None = None  # per-site requests: holdout, groups, estimate, shares

    @model_serializer(mode="wrap")
    def _without_empty_verification(self, handler: Any) -> dict[str, Any]:
        """A request settled per device has no verification, and its JSON no such key (so version 1
        documents keep their bytes)."""
        data = handler(self)
        if data.get("verification") is None:
            data.pop("verification", None)
        return data


class LeafProof(_Part):
    """A leaf with its Merkle proof, as claims use it."""

    account: str
    token: str
    amount: Amount
    proof: list[str]


class ReportMismatch(ValueError):
    """A document does not match the on-chain report; the message says how."""


class ReportDocument(BaseModel):
    """One epoch's settlement report document (version 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True, ignored_types=(cached_property,))

    digest: Hash32
    epoch: Annotated[int, Field(ge=1, lt=2**64)]
    previousRoot: Hash32
    rewardsRoot: Hash32
    requestsHash: Hash32
    penaltiesHash: Hash32
    emission: Amount
    payouts: list[PayoutEntry]
    penalties: list[PenaltyEntry]
    ledger: list[LedgerEntry]
    requests: list[RequestOutcome]
    emissionScaled: bool = False

    # -------------------------------------------------------------- reading

    @classmethod
    def parse(cls, data: dict[str, Any] | str | bytes) -> "ReportDocument":
        """The document in `data` (an object or JSON text); pydantic.ValidationError says what is wrong."""
        if isinstance(data, (str, bytes)):
            data = json.loads(data)
        if not isinstance(data, dict):
            raise ValueError("a report document is a JSON object")
        version = data.get("version", DOCUMENT_VERSION)
        if version != DOCUMENT_VERSION:
            raise ValueError(f"report document version {version!r} is not the supported {DOCUMENT_VERSION}")
        return cls.model_validate({k: v for k, v in data.items() if k != "version"})

    @classmethod
    def from_published(cls, payload: dict[str, Any]) -> "ReportDocument":
        """The document in an oracle's answer: `{"status", "report", "leaves"}` (a report by digest)
        or the report itself with its `leaves` beside it (the final report of an epoch)."""
        if not isinstance(payload, dict):
            raise ValueError("the answer is not a JSON object")
        body = payload.get("report", payload)
        if not isinstance(body, dict):
            raise ValueError("the answer's report is not a JSON object")
        return cls.parse({k: v for k, v in body.items() if k != "leaves"})

    # -------------------------------------------------------------- writing

    def as_json(self) -> dict[str, Any]:
        """The JSON object of this document (amounts as strings, keys sorted), as served."""
        return json.loads(self.canonical_json())

    def canonical_json(self) -> str:
        """The stable text of this document: identical bytes on every oracle for the same settlement."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)

    # -------------------------------------------------------------- the signed report and its tree

    def settlement_report(self) -> SettlementReport:
        """The signed report (with its arrays) this document describes."""
        return SettlementReport(
            epoch=self.epoch,
            previous_root=bytes.fromhex(self.previousRoot[2:]),
            rewards_root=bytes.fromhex(self.rewardsRoot[2:]),
            payouts=tuple(RequestPayout(p.requestId, p.payout) for p in self.payouts),
            penalties=tuple(Penalty(p.account, p.amount) for p in self.penalties),
            emission=self.emission,
        )

    def ledger_totals(self) -> dict[tuple[str, str], int]:
        """{(account, token): cumulative amount} of the ledger."""
        return {(e.account, e.token): e.amount for e in self.ledger}

    def leaves(self) -> list[RewardLeaf]:
        """The ledger as Merkle leaves."""
        return [entry.leaf() for entry in self.ledger]

    @cached_property
    def _tree(self) -> RewardsTree | None:
        leaves = self.leaves()
        return RewardsTree(leaves) if leaves else None

    def tree(self) -> RewardsTree | None:
        """The rewards tree of the ledger (None when the ledger is empty), built once per document."""
        return self._tree

    def computed_root(self) -> bytes:
        """The root recomputed from the ledger (ZERO_ROOT for an empty ledger)."""
        tree = self.tree()
        return tree.root if tree is not None else ZERO_ROOT

    def proofs(self) -> list[LeafProof]:
        """Every leaf with its proof, in ledger order."""
        tree = self.tree()
        if tree is None:
            return []
        return [LeafProof(account=leaf.account, token=leaf.token, amount=leaf.amount,
                          proof=["0x" + node.hex() for node in tree.proof(leaf)]) for leaf in self.leaves()]

    def verify(self, onchain_root: str | bytes, digest: str | None = None, requests_hash: str | None = None) -> None:
        """Raise ReportMismatch unless the ledger's root is `onchain_root` (and, when given, the
        document's digest is `digest` and its payouts hash to the on-chain `requests_hash`)."""
        root = onchain_root if isinstance(onchain_root, bytes) else bytes.fromhex(onchain_root[2:])
        if digest is not None and self.digest.lower() != digest.lower():
            raise ReportMismatch(f"document digest {self.digest} is not {digest}")
        computed = self.computed_root()
        if computed != root:
            raise ReportMismatch(f"recomputed root 0x{computed.hex()} differs from the on-chain root 0x{root.hex()}")
        if requests_hash is not None:
            ours = "0x" + self.settlement_report().requests_hash.hex()
            if ours != requests_hash.lower():
                raise ReportMismatch("the document's payouts do not hash to the on-chain requestsHash")
