"""Response models of the REST API: they document the JSON in the OpenAPI schema.

Routes build plain dicts of exactly these shapes and serialize them with orjson (the models are not
instantiated per request: validation would cost more than the query). Amounts (uint256 token base
units) are decimal strings; energy is integer Wh, power integer W, times unix seconds. Kind names
and statuses are protocol's (protocol.kinds, protocol.statuses); the problem model protocol.problems'.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from api.siwe_message import MAX_MESSAGE_CHARS
from protocol.problems import Problem  # noqa: F401  (the error model every route documents)
from protocol.statuses import IndexedReportStatus, RequestStatus

# The formats the routes take and serve (documented as JSON Schema patterns; the route models are
# not instantiated, so these document rather than validate; api.params validates inputs).
ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"  # served EIP-55 checksummed
HASH_PATTERN = r"^0x[0-9a-fA-F]{64}$"  # digests, roots, transaction hashes, proof nodes
AMOUNT_PATTERN = r"^[0-9]+$"  # uint256 token base units as a decimal string
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"  # opaque, base64url without padding
Address = Annotated[str, Field(pattern=ADDRESS_PATTERN, examples=["0x52908400098527886E0F7030069857D2E4169EE7"])]
Hash = Annotated[str, Field(pattern=HASH_PATTERN)]
Amount = Annotated[str, Field(pattern=AMOUNT_PATTERN, examples=["1000000"],
                              description="token base units as a decimal string (the token's `decimals` are "
                                          "in GET /v1/tokens)")]
Cursor = Annotated[str, Field(pattern=CURSOR_PATTERN, description="pass as `cursor` for the next page")]

# What a request or report of the mirror can be (a request the chain knows is never `none`).
REQUEST_STATUSES: tuple[str, ...] = tuple(s.value for s in RequestStatus if s is not RequestStatus.NONE)
REPORT_STATUSES: tuple[str, ...] = tuple(s.value for s in IndexedReportStatus)
RequestStatusName = Literal[REQUEST_STATUSES]  # type: ignore[valid-type]  (the query filter's values)
ReportStatusName = Literal[REPORT_STATUSES]  # type: ignore[valid-type]


class Profile(BaseModel):
    """Off-chain data the device's current owner wrote (SIWE session); a previous owner's is not shown."""

    name: str | None
    locationLabel: str | None
    updatedAt: int


class CapabilityOut(BaseModel):
    """A site's capability record (proof of flexibility): what a capability test measured it shed."""

    site: Address
    requestId: int = Field(description="the capability test (a FlexMarket request of the test budget account)")
    testedW: int = Field(description="the site meter's reduction over the test window beyond the untested sites', "
                                     "average W")
    passed: bool = Field(description="testedW reached the pass share of what the site's devices' own baselines "
                                     "said they would draw (protocol.capability)")
    testedAt: int = Field(description="the test window's start, unix s")


class CapabilityRecordOut(CapabilityOut):
    """A capability record with whether its report is final (only final records cap the site's offers)."""

    final: bool


class SiteCapability(BaseModel):
    """A site's capability records, newest first, and the latest final one (null: never tested)."""

    site: Address
    latest: CapabilityOut | None
    records: list[CapabilityRecordOut]


class DeviceOut(BaseModel):
    """A device as the DeviceRegistry has it, with its owner's off-chain profile."""

    address: Address
    owner: Address
    kind: int
    kindName: str = Field(description="protocol.kinds name: ev_charger, heat_pump, hvac, battery, water_heater, "
                                      "household, site_meter")
    capacityW: int = Field(description="the most power it can curtail, W (a site meter: the connection's rating)")
    zone: int
    active: bool
    registered: bool
    registeredBlock: int
    updatedBlock: int
    site: Address | None = Field(description="the site meter it was registered at (DeviceRegistry.siteOf); its "
                                             "owner is that site's owner. Null when metered on its own")
    siteDevices: list[Address] | None = Field(
        description="a site meter's registered devices, at most DeviceRegistry.MAX_DEVICES_PER_SITE (255) "
                    "(detail route only; null for other kinds and in lists)")
    profile: Profile | None
    capability: CapabilityOut | None = Field(None, description="a site meter's latest final capability record "
                                                               "(null: none yet, or not a site meter)")


class DevicePage(BaseModel):
    """One page of devices; pass `next` as `cursor` for the following page (null at the end)."""

    items: list[DeviceOut]
    next: Cursor | None


class StakeOut(BaseModel):
    """An account's stake in Staking."""

    bonded: Amount
    unbonding: Amount
    releaseAt: int
    locked: Amount
    slashed: Amount


class TokenRewards(BaseModel):
    """One token of an account's rewards: what the latest final root grants, what was claimed, and the
    Merkle proof of the leaf (account, token, cumulative) RewardDistributor.claim needs."""

    token: Address
    cumulative: Amount
    claimed: Amount
    claimable: Amount
    proof: list[Hash]


class RewardsOut(BaseModel):
    """An account's rewards as of the latest final report whose leaf set this API verified."""

    account: Address
    epoch: int = Field(description="epoch of the report whose root the proofs lead to (0: none yet)")
    root: Hash = Field(description="that report's rewards root (the RewardDistributor's current root)")
    verified: bool = Field(description="false while the latest final report's leaves are not fetched and verified")
    tokens: list[TokenRewards]


class OwnerOut(BaseModel):
    """An owner: device counts, stake and rewards."""

    address: Address
    devices: int = Field(description="registered controllable devices (site meters are counted in `sites`)")
    activeDevices: int
    capacityW: int = Field(description="active controllable capacity, W (as the registry's zoneStats counts it)")
    sites: int = Field(description="registered site meters")
    stake: StakeOut
    rewards: RewardsOut


class DeviceResult(BaseModel):
    """One device's settlement in a request, from the verified report document."""

    device: Address
    owner: Address
    committedWh: int | None
    deliveredWh: int | None
    ratioBps: int | None
    factorBps: int | None
    payableWh: int | None
    payout: Amount | None
    ownerPayout: Amount | None
    fee: Amount | None
    emission: Amount | None
    penalty: Amount | None
    eligible: bool | None
    reasons: list[str] | None
    flags: list[str] | None


class SiteResult(BaseModel):
    """One settlement unit of a per-site request (a site meter, or a device metered on its own), from
    the verified report document's `verification.sites`."""

    site: Address
    group: Literal["treatment", "control"] = Field(description="treatment: dispatched; control: held out")
    committedW: int
    paidWh: int = Field(description="the verified energy it was paid for (0 when held out)")
    weightWh: int = Field(description="its own clipped reduction, the weight of its share")
    devices: list[Address] = Field(description="its committed devices, at most 255")


class SitePage(BaseModel):
    """One page of a request's settlement units, by address; pass `next` as `cursor` (null at the end)."""

    items: list[SiteResult]
    next: Cursor | None


class VerificationOut(BaseModel):
    """How a per-site request was verified, as the oracle's report document states it (not a chain fact:
    the on-chain roots do not cover it)."""

    holdoutBps: int | None = Field(description="share of units held out (control group), basis points")
    gateClosure: int | None = Field(description="unix s after which dispatch was fixed")
    seed: str | None = Field(description="the holdout draw's seed (the gate block's hash)")
    estimator: str | None
    estimatedWh: int | None = Field(description="the verified reduction of the dispatched units, Wh")
    ci95Wh: list[int] | None = Field(min_length=2, max_length=2, description="its 95 % interval [low, high], Wh")
    method: str | None
    rule: str | None = Field(description="portfolio, site_fallback or none")
    fallbackReason: str | None
    qualityPassed: bool | None
    treatmentInEstimate: int | None
    controlInEstimate: int | None
    error: str | None = Field(description="why no estimate could be made, if none was")
    siteCount: int
    dispatchedSites: int
    heldOutSites: int
    paidWh: int = Field(description="energy paid over all units, Wh")
    sites: list[SiteResult] = Field(description="the first 50 units by address; `sitesNext` pages on at "
                                                "/v1/requests/{id}/sites")
    sitesNext: Cursor | None


class RequestOut(BaseModel):
    """A FlexMarket request. `deliveredWh` and `devices` come with the settling report's verified document."""

    id: int
    buyer: Address
    zone: int
    start: int
    end: int
    targetW: int
    pricePerKWh: Amount
    paymentToken: Address
    maxBudget: Amount
    status: str = Field(description="open, cancelled, settling, settled or expired")
    payout: Amount | None
    refund: Amount | None
    reportDigest: Hash | None
    epoch: int | None
    openedBlock: int
    openedTx: Hash
    holdoutBps: int | None = Field(description="the market's holdout share at opening (RequestRules); null when "
                                               "the market recorded none")
    gateClosure: int | None = Field(description="unix s of the request's gate closure (RequestRules), or null")
    acceptedW: int | None = Field(None, description="watts the oracles' clearing accepted (AllocationPosted); null "
                                                    "until the allocation is posted after gate closure")
    clearingPrice: Amount | None = Field(None, description="the uniform clearing price per kWh in the token's base "
                                                           "units, at or below pricePerKWh; null until posted")
    allocationRoot: Hash | None = Field(None, description="Merkle root of the allocation's acceptances, which nodes "
                                                          "check their acceptance proofs against; null until posted")
    availabilityPricePerKWh: Amount | None = Field(None, description="the buyer's availability ceiling per kW of "
                                                                     "accepted power per hour of the window "
                                                                     "(RequestAvailability); null: it pays none")
    availabilityPrice: Amount | None = Field(None, description="the allocation's uniform availability price per kW "
                                                               "per hour; null until posted")
    deliveredWh: int | None
    devices: list[DeviceResult] | None = Field(None, description="per-device results (detail route only); for a "
                                                                "per-site request, one per settlement unit")
    verification: VerificationOut | None = Field(None, description="per-site requests with a verified document "
                                                                   "(detail route only)")


class AcceptanceOut(BaseModel):
    """One accepted device of a request's allocation."""

    device: Address
    site: Address
    watts: int = Field(description="watts the device must shed during the window")


class AllocationOut(BaseModel):
    """A request's clearing as an oracle published it; its leaves hash to the root posted on chain."""

    requestId: int
    root: Hash = Field(description="the allocation's Merkle root, equal to the posted AllocationPosted root")
    acceptedW: int = Field(description="total accepted watts (the sum of `accepted`)")
    clearingPrice: Amount = Field(description="uniform clearing price per kWh, token base units")
    availabilityPrice: Amount = Field(description="uniform availability price per kW per hour (0: none)")
    capW: int = Field(description="the most the clearing could accept: target x (1 + margin)")
    marginBps: int = Field(description="over-procurement margin from the zone's delivery record (bps)")
    offers: int = Field(description="offer tranches the clearing considered")
    accepted: list[AcceptanceOut]
    controlSites: list[Address] = Field(description="held-out sites that offered at or below the clearing price")
    signature: str = Field(description="the publishing oracle's EIP-712 Allocation signature")
    signer: Address = Field(description="the oracle that signed it (an active OracleHub oracle)")
    source: str = Field(description="the URL the API fetched it from")


class RequestPage(BaseModel):
    """One page of requests, newest first."""

    items: list[RequestOut]
    next: Cursor | None


class ReportOut(BaseModel):
    """A settlement report submitted to the OracleHub."""

    digest: Hash
    epoch: int
    status: str = Field(description="pending, challenged, final or discarded")
    previousRoot: Hash
    rewardsRoot: Hash
    requestsHash: Hash
    penaltiesHash: Hash
    emission: Amount
    submitter: Address
    signers: list[Address]
    challengeDeadline: int
    challenger: Address | None
    challengeReason: str | None
    submittedBlock: int
    submittedTx: Hash
    finalizedBlock: int | None
    verified: bool = Field(description="an oracle's leaf set for it was fetched and matched the on-chain root")
    requestIds: list[int]


class ReportPage(BaseModel):
    """One page of reports, newest epoch first."""

    items: list[ReportOut]
    next: Cursor | None


class TokenAmount(BaseModel):
    """An amount of one token."""

    token: Address
    amount: Amount


class ZoneStats(BaseModel):
    """One grid zone."""

    zone: int
    devices: int
    activeDevices: int
    registeredCapacityW: int = Field(description="capacity of the zone's registered controllable devices, active "
                                                 "or not, W (site meters are not counted)")
    activeCapacityW: int
    requests: int
    settledRequests: int
    deliveredWh: int = Field(description="energy delivered in settled requests with verified documents")
    deliveredKWh: float
    paid: list[TokenAmount] = Field(description="payouts of settled requests, per payment token")


class ZoneList(BaseModel):
    """Every zone the mirror knows (a registered device or a request), by zone number."""

    items: list[ZoneStats]


class NetworkStats(BaseModel):
    """The whole network."""

    devices: int
    activeDevices: int
    activeCapacityW: int
    owners: int
    zones: int
    requests: int
    settledRequests: int
    reports: int
    finalReports: int
    currentEpoch: int
    deliveredWh: int
    paid: list[TokenAmount]
    indexedBlock: int
    headBlock: int


class Health(BaseModel):
    """Liveness."""

    status: str


class Ready(BaseModel):
    """Readiness: the indexer's lag behind the chain head."""

    indexed_block: int
    head_block: int
    lag_blocks: int


class Nonce(BaseModel):
    """A fresh SIWE nonce (valid once, until `expiresAt`)."""

    nonce: str
    expiresAt: int


class SiweLogin(BaseModel):
    """A signed EIP-4361 message."""

    message: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS,
                         description="the EIP-4361 text the wallet signed, LF line ends, printable ASCII")
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$", description="the EIP-191 signature: 65 bytes r, s, v")


class SessionOut(BaseModel):
    """A session: send `Authorization: Bearer <token>`."""

    token: str
    address: Address
    expiresAt: int


class ProfileIn(BaseModel):
    """Off-chain device data an owner may write; null clears a field."""

    model_config = {"extra": "forbid"}

    name: str | None = Field(None, min_length=1, max_length=64)
    locationLabel: str | None = Field(None, min_length=1, max_length=128)


class TokenOut(BaseModel):
    """An ERC-20 the API states amounts in, as the chain answered `symbol()`, `name()` and `decimals()`."""

    address: Address
    symbol: str | None = Field(description="null when the token did not answer a usable symbol (see `error`)")
    name: str | None
    decimals: int | None = Field(ge=0, le=77, description="an amount of `n` base units is n / 10**decimals tokens")
    roles: list[Literal["stake", "payment"]] = Field(description="`stake`: the protocol token bonded in Staking "
                                                                 "(NEGA); `payment`: requests are paid in it")
    error: str | None = Field(description="why the lookup failed, or null")


class TokenList(BaseModel):
    """Every token the API has seen, by address. Amounts everywhere (REST and SSE) are decimal strings of
    a token's base units."""

    items: list[TokenOut]


# ---------------------------------------------------------------------- the web app's views (api.app_reads)

class EventDevice(BaseModel):
    """One of the unit's devices the verified allocation accepted watts from."""

    device: Address
    kindName: str | None
    acceptedW: int


class OwnerEvent(BaseModel):
    """One of an owner's settlement units (a site, or a device settled alone) in one request."""

    requestId: int
    zone: int
    start: int
    end: int
    requestStatus: str
    paymentToken: Address
    unit: Address = Field(description="the settlement unit: a site meter, or a device metered alone")
    unitKindName: str | None
    group: Literal["treatment", "control"] | None = Field(description="treatment: dispatched; control: held out "
                                                                      "by the draw; null when settled per device")
    decision: Literal["dispatched", "held_out", "reported"] = Field(
        description="dispatched: the allocation accepted watts from it (or, settled per device, it committed); "
                    "held_out: the draw put it in the control group; reported: in the report, neither")
    acceptedW: int | None = Field(description="watts the verified allocation accepted from its devices (null: "
                                              "no allocation document)")
    devices: list[EventDevice]
    settled: bool = Field(description="the request's verified report document lists it")
    committedWh: int | None
    deliveredWh: int | None
    payout: Amount | None = Field(description="what its owner was paid for it, the payment token's base units")
    eligible: bool | None
    reasons: list[str] = Field(description="the oracles' reason codes (e.g. held_out, baseline_quality)")


class OwnerEventPage(BaseModel):
    """A page of an owner's events, newest request first."""

    items: list[OwnerEvent]
    next: Cursor | None


class SeriesGroup(BaseModel):
    """One holdout group's energy per interval, summed over its units' baseline records."""

    group: Literal["treatment", "control"]
    sites: int = Field(description="units whose records were summed")
    baselineWh: list[int]
    actualWh: list[int]


class RequestSeries(BaseModel):
    """A settled request's plot: each group's baseline and actual per interval, and the estimate."""

    requestId: int
    start: int
    end: int
    intervalSeconds: int
    groups: list[SeriesGroup]
    estimatedWh: int | None = Field(description="the verified reduction of the dispatched units, Wh (portfolio "
                                                "or site rule; null when none could be made)")
    ci95Wh: list[int] | None
    rule: str | None
    fallbackReason: str | None


class OracleReport(BaseModel):
    """The newest report an oracle submitted or signed."""

    digest: Hash
    epoch: int
    status: str
    submittedBlock: int
    challengeDeadline: int
    role: Literal["submitter", "signer"]


class OracleOut(BaseModel):
    """An OracleHub oracle, its published URL and its last report."""

    address: Address
    url: str
    active: bool
    lastReport: OracleReport | None


class OracleList(BaseModel):
    """The oracles, by address."""

    items: list[OracleOut]


class NetworkInfo(BaseModel):
    """What a frontend needs to talk to the chain: chain id, an RPC URL a browser may use, addresses."""

    chainId: int
    rpcUrl: str | None = Field(description="a JSON-RPC URL for browsers (the configured public one, or the API's "
                                           "own RPC when it is on this machine); null: use an injected wallet")
    devnet: bool = Field(description="a local development chain (chain id 31337): test keys may be used")
    contracts: dict[str, Address]
    paymentTokens: list[Address] = Field(description="tokens requests are paid in (seen on chain, or the "
                                                     "deployment's test stablecoin)")
