"""The SQL mirror's tables (SQLModel), in their own metadata so they never mix with the oracle's.

Chain-derived tables (`devices`, `requests`, `reports`, ...) are written only by the indexer's
projection, and every write is journalled (`undo_log`) so a reorg can roll it back. Oracle
documents (`report_documents`, `report_requests`, `report_sites`, `reward_leaves`) are
content-addressed by report digest and stored only after their Merkle root matched the on-chain
one, so a reorg never makes them wrong (a reorged-away digest is simply no longer referenced);
allocation documents (`allocation_documents`) likewise, by request and the posted root.
Owner data (`device_profiles`), SIWE nonces and sessions are off-chain and written through the
authenticated routes only.

Amounts are uint256 values kept as decimal strings (SQLite integers stop at 2**63); energy and
power fit 64-bit integers.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, String, Text
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

api_registry = registry()


class ApiTable(SQLModel, registry=api_registry):
    """Base of every API table: its metadata is `api_metadata`, not SQLModel's global one."""


api_metadata = ApiTable.metadata


def _big(nullable: bool = False, **kwargs) -> Column:
    return Column(BigInteger, nullable=nullable, **kwargs)


class IndexerState(ApiTable, table=True):
    """Where the indexer stands: the last block whose events are in the mirror (one row, id 1)."""

    __tablename__ = "indexer_state"

    id: int = Field(default=1, primary_key=True)
    chain_id: int = Field(sa_column=_big())
    last_block: int = Field(sa_column=_big())
    last_hash: str = Field(max_length=66)
    head_block: int = Field(sa_column=_big())
    updated_at: int = Field(sa_column=_big())


class BlockHash(ApiTable, table=True):
    """Hashes of recently indexed blocks (range ends and blocks with events), to find a reorg's fork."""

    __tablename__ = "block_hashes"

    number: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    hash: str = Field(max_length=66)


class UndoEntry(ApiTable, table=True):
    """What one projection write replaced: the previous row (JSON) or null if the row was new."""

    __tablename__ = "undo_log"
    __table_args__ = (Index("ix_undo_log_block", "block"),)

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    block: int = Field(sa_column=_big())
    table_name: str = Field(max_length=64)
    key: str = Field(sa_column=Column(Text, nullable=False))
    previous: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class ChainEvent(ApiTable, table=True):
    """Every decoded contract event, in chain order (the SSE stream reads these)."""

    __tablename__ = "chain_events"
    __table_args__ = (Index("ix_chain_events_kind", "kind", "block", "log_index"),)

    block: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    log_index: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    tx_hash: str = Field(max_length=66)
    contract: str = Field(max_length=32)
    name: str = Field(max_length=64)
    kind: str = Field(max_length=16, description="request, report, claim or other")
    args: str = Field(sa_column=Column(Text, nullable=False))


class Device(ApiTable, table=True):
    """A device as the DeviceRegistry has it. `site` is the site meter a device was registered at
    (DeviceSited; null when metered alone); such a device's `owner` is kept equal to its site's."""

    __tablename__ = "devices"
    __table_args__ = (
        Index("ix_devices_zone", "zone", "address"),
        Index("ix_devices_owner", "owner", "address"),
        Index("ix_devices_kind", "kind", "address"),
        Index("ix_devices_active", "active", "address"),
        Index("ix_devices_site", "site", "address"),
    )

    address: str = Field(primary_key=True, max_length=42)
    owner: str = Field(max_length=42)
    kind: int
    capacity_w: int = Field(sa_column=_big())
    zone: int = Field(sa_column=_big())
    active: bool
    registered: bool
    registered_block: int = Field(sa_column=_big())
    updated_block: int = Field(sa_column=_big())
    site: str | None = Field(default=None, max_length=42)


class ZoneTotal(ApiTable, table=True):
    """Running totals per zone, kept by the projection (so zone stats are one row read)."""

    __tablename__ = "zone_totals"

    zone: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    devices: int = Field(sa_column=_big())
    active_devices: int = Field(sa_column=_big())
    active_capacity_w: int = Field(sa_column=_big())
    requests: int = Field(sa_column=_big())
    settled_requests: int = Field(sa_column=_big())


class FlexRequest(ApiTable, table=True):
    """A FlexMarket request and where it stands."""

    __tablename__ = "requests"
    __table_args__ = (
        Index("ix_requests_zone", "zone", "id"),
        Index("ix_requests_status", "status", "id"),
        Index("ix_requests_buyer", "buyer", "id"),
    )

    id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    buyer: str = Field(max_length=42)
    zone: int = Field(sa_column=_big())
    start: int = Field(sa_column=_big())
    end: int = Field(sa_column=_big())
    target_w: int = Field(sa_column=_big())
    price_per_kwh: str = Field(max_length=80)
    payment_token: str = Field(max_length=42)
    max_budget: str = Field(max_length=80)
    status: str = Field(max_length=16)
    payout: str | None = Field(default=None, max_length=80)
    refund: str | None = Field(default=None, max_length=80)
    report_digest: str | None = Field(default=None, max_length=66)
    opened_block: int = Field(sa_column=_big())
    opened_tx: str = Field(max_length=66)
    updated_block: int = Field(sa_column=_big())
    holdout_bps: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    gate_closure: int | None = Field(default=None, sa_column=_big(nullable=True))
    accepted_w: int | None = Field(default=None, sa_column=_big(nullable=True))
    clearing_price: str | None = Field(default=None, max_length=80)
    allocation_root: str | None = Field(default=None, max_length=66)
    availability_price_per_kwh: str | None = Field(default=None, max_length=80)  # the buyer's ceiling
    availability_price: str | None = Field(default=None, max_length=80)  # the allocation's uniform price


class Report(ApiTable, table=True):
    """A settlement report submitted to the OracleHub."""

    __tablename__ = "reports"
    __table_args__ = (Index("ix_reports_status", "status", "epoch"), Index("ix_reports_epoch", "epoch"))

    digest: str = Field(primary_key=True, max_length=66)
    epoch: int = Field(sa_column=_big())
    status: str = Field(max_length=16)
    previous_root: str = Field(max_length=66)
    rewards_root: str = Field(max_length=66)
    requests_hash: str = Field(max_length=66)
    penalties_hash: str = Field(max_length=66)
    emission: str = Field(max_length=80)
    submitter: str = Field(max_length=42)
    signers: str = Field(sa_column=Column(Text, nullable=False))
    penalties: str = Field(sa_column=Column(Text, nullable=False))
    request_ids: str = Field(default="[]", sa_column=Column(Text, nullable=False))
    challenge_deadline: int = Field(sa_column=_big())
    challenger: str | None = Field(default=None, max_length=42)
    challenge_reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    submitted_block: int = Field(sa_column=_big())
    submitted_tx: str = Field(max_length=66)
    finalized_block: int | None = Field(default=None, sa_column=_big(nullable=True))
    updated_block: int = Field(sa_column=_big())


class Claim(ApiTable, table=True):
    """What an account has claimed of a token so far (RewardDistributor's cumulative counter)."""

    __tablename__ = "claims"

    account: str = Field(primary_key=True, max_length=42)
    token: str = Field(primary_key=True, max_length=42)
    claimed: str = Field(max_length=80)
    claims: int
    updated_block: int = Field(sa_column=_big())


class StakeRow(ApiTable, table=True):
    """An account's stake in Staking."""

    __tablename__ = "stakes"

    account: str = Field(primary_key=True, max_length=42)
    bonded: str = Field(max_length=80)
    unbonding: str = Field(max_length=80)
    release_at: int = Field(sa_column=_big())
    locked: str = Field(max_length=80)
    slashed: str = Field(max_length=80)
    updated_block: int = Field(sa_column=_big())


class OracleRow(ApiTable, table=True):
    """An oracle of the OracleHub and its published URL."""

    __tablename__ = "oracles"

    address: str = Field(primary_key=True, max_length=42)
    url: str = Field(default="", sa_column=Column(Text, nullable=False))
    active: bool
    updated_block: int = Field(sa_column=_big())


class ReportDocument(ApiTable, table=True):
    """An oracle's published report whose Merkle root matched the on-chain root (by digest)."""

    __tablename__ = "report_documents"

    digest: str = Field(primary_key=True, max_length=66)
    epoch: int = Field(sa_column=_big())
    rewards_root: str = Field(max_length=66)
    source: str = Field(sa_column=Column(Text, nullable=False))
    leaves: int
    fetched_at: int = Field(sa_column=_big())


class AllocationDocumentRow(ApiTable, table=True):
    """An oracle's published allocation of a request that matched the allocation posted on chain
    (protocol.allocation_document); keyed by request and root, so a reorg that changes the posted
    root never serves the old document."""

    __tablename__ = "allocation_documents"

    request_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root: str = Field(primary_key=True, max_length=66)
    body: str = Field(sa_column=Column(Text, nullable=False))
    signature: str = Field(max_length=200)
    signer: str = Field(max_length=42)
    source: str = Field(sa_column=Column(Text, nullable=False))
    fetched_at: int = Field(sa_column=_big())


class ReportRequest(ApiTable, table=True):
    """One request's settlement in a verified report document: delivered energy, per-device (or per
    settlement unit) results and, for a per-site request, the verification summary (JSON of
    api.verification.summary; null when the request was settled per device)."""

    __tablename__ = "report_requests"

    digest: str = Field(primary_key=True, max_length=66)
    request_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    delivered_wh: int = Field(sa_column=_big())
    payout: str = Field(max_length=80)
    refund: str = Field(max_length=80)
    devices: str = Field(sa_column=Column(Text, nullable=False))
    verification: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class ReportSite(ApiTable, table=True):
    """One settlement unit (site) of a per-site request in a verified report document: its holdout
    group and the energy it was paid for (the report's `verification.sites`)."""

    __tablename__ = "report_sites"

    digest: str = Field(primary_key=True, max_length=66)
    request_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    site: str = Field(primary_key=True, max_length=42)
    group_name: str = Field(max_length=16, description="treatment (dispatched) or control (held out)")
    committed_w: int = Field(sa_column=_big())
    paid_wh: int = Field(sa_column=_big())
    weight_wh: int = Field(sa_column=_big())
    devices: str = Field(sa_column=Column(Text, nullable=False))


class RewardLeafRow(ApiTable, table=True):
    """One leaf of a verified report's rewards tree, with the proof RewardDistributor.claim needs."""

    __tablename__ = "reward_leaves"

    digest: str = Field(primary_key=True, max_length=66)
    account: str = Field(primary_key=True, max_length=42)
    token: str = Field(primary_key=True, max_length=42)
    amount: str = Field(max_length=80)
    proof: str = Field(sa_column=Column(Text, nullable=False))


class DeviceProfile(ApiTable, table=True):
    """Off-chain data a device's owner wrote through a SIWE session."""

    __tablename__ = "device_profiles"

    device: str = Field(primary_key=True, max_length=42)
    name: str | None = Field(default=None, max_length=64)
    location_label: str | None = Field(default=None, max_length=128)
    written_by: str = Field(max_length=42)
    updated_at: int = Field(sa_column=_big())


class SiweNonce(ApiTable, table=True):
    """A nonce handed out for a Sign-In with Ethereum message; used at most once."""

    __tablename__ = "siwe_nonces"

    nonce: str = Field(primary_key=True, max_length=64)
    expires_at: int = Field(sa_column=_big())
    used: bool = False


class SessionRow(ApiTable, table=True):
    """A signed-in session: the SHA-256 of its bearer token, the address and expiry."""

    __tablename__ = "sessions"

    token_hash: str = Field(primary_key=True, max_length=64)
    address: str = Field(sa_column=Column(String(42), nullable=False, index=True))
    expires_at: int = Field(sa_column=_big())
    created_at: int = Field(sa_column=_big())


class TokenRow(ApiTable, table=True):
    """An ERC-20 the API states amounts in, read from the chain once (api.tokens): its metadata is
    fixed once deployed. `stake`: the protocol's stake token; `payment`: a buyer pays requests in it
    (the manifest's stablecoin, or seen in a RequestOpened). `error` says why a lookup failed (the
    symbol and decimals are then null and the token is not asked again)."""

    __tablename__ = "tokens"

    address: str = Field(primary_key=True, max_length=42)
    symbol: str | None = Field(default=None, max_length=32)
    name: str | None = Field(default=None, max_length=64)
    decimals: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    stake: bool = False
    payment: bool = False
    error: str | None = Field(default=None, max_length=200)
    looked_up_at: int = Field(sa_column=_big())


CHAIN_TABLES = ("devices", "zone_totals", "requests", "reports", "claims", "stakes", "oracles")
"""Tables the projection writes (journalled, rolled back on reorg)."""


class ReportUnit(ApiTable, table=True):
    """One settlement unit's outcome (a site, or a device settled on its own) in a verified report
    document, keyed for the owner's view: what it committed and delivered, what its owner was paid,
    and the oracles' reasons (the report's `requests[].devices`)."""

    __tablename__ = "report_units"
    __table_args__ = (Index("ix_report_units_owner", "owner", "request_id"),)

    digest: str = Field(primary_key=True, max_length=66)
    request_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    unit: str = Field(primary_key=True, max_length=42)
    owner: str = Field(max_length=42)
    committed_wh: int = Field(sa_column=_big())
    delivered_wh: int = Field(sa_column=_big())
    owner_payout: str = Field(max_length=80)
    eligible: bool
    reasons: str = Field(sa_column=Column(Text, nullable=False))


class ReportSeries(ApiTable, table=True):
    """A request's per-interval energy, summed over one holdout group's settlement units (treatment:
    dispatched, control: held out), from the verified document's baseline records: the figures a plot
    of the event shows (a request settled per device has only a treatment group)."""

    __tablename__ = "report_series"

    digest: str = Field(primary_key=True, max_length=66)
    request_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    group_name: str = Field(primary_key=True, max_length=16)
    units: int = Field(sa_column=Column(Integer, nullable=False))
    baseline_wh: str = Field(sa_column=Column(Text, nullable=False))
    actual_wh: str = Field(sa_column=Column(Text, nullable=False))


class AllocationUnit(ApiTable, table=True):
    """One line of a verified allocation document: an accepted device with its site and watts
    (group treatment), or a held-out control site (group control, watts 0, device = site)."""

    __tablename__ = "allocation_units"
    __table_args__ = (Index("ix_allocation_units_site", "site"), Index("ix_allocation_units_device", "device"))

    request_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    root: str = Field(primary_key=True, max_length=66)
    device: str = Field(primary_key=True, max_length=42)
    site: str = Field(max_length=42)
    group_name: str = Field(max_length=16)
    watts: int = Field(sa_column=_big())


class CapabilityRecordRow(ApiTable, table=True):
    """One tested site's capability record (proof of flexibility, protocol.capability) in a verified
    report document: the watts it was measured to shed in a capability test, whether it passed, when."""

    __tablename__ = "capability_records"
    __table_args__ = (Index("ix_capability_records_site", "site", "tested_at"),)

    digest: str = Field(primary_key=True, max_length=66)
    request_id: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    site: str = Field(primary_key=True, max_length=42)
    tested_w: int = Field(sa_column=_big())
    passed: bool
    tested_at: int = Field(sa_column=_big())
