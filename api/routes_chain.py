"""Read-only routes over the chain mirror: devices, owners, requests, reports, rewards, statistics.

A module-level router (mounted by api.app); the app state comes in through api.deps."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Path, Query

from api import params
from api.deps import Context
from api.problems import ApiProblem, Reason
from api.reads import BadCursor, DeviceFilter
from api.responses import json_response
from api.openapi import problem_responses
from api.schemas import (
    ADDRESS_PATTERN,
    AllocationOut,
    CURSOR_PATTERN,
    HASH_PATTERN,
    DeviceOut,
    DevicePage,
    NetworkStats,
    OwnerOut,
    ReportOut,
    ReportPage,
    ReportStatusName,
    RequestOut,
    RequestPage,
    RequestStatusName,
    RewardsOut,
    SitePage,
    TokenList,
    ZoneList,
    ZoneStats,
)
from api.tokens import token_rows

UINT32 = 2**32 - 1
Limit = Query(50, ge=1, le=200, description="page size")
Cursor = Query(None, min_length=1, max_length=200, json_schema_extra={"pattern": CURSOR_PATTERN},
               description="the `next` value of the previous page")
# Addresses and digests are checked by api.params (400 `invalid_address` / `invalid_digest`); the
# patterns document them without letting FastAPI answer a generic `invalid_parameter` first.
_ADDRESS = {"pattern": ADDRESS_PATTERN}
_DIGEST = {"pattern": HASH_PATTERN}
ON_INPUT = problem_responses(400)
ON_LOOKUP = problem_responses(400, 404)


def _cursor_problem(error: BadCursor) -> ApiProblem:
    return ApiProblem(400, Reason.INVALID_CURSOR, "Invalid cursor", f"cursor: {error}")


router = APIRouter(prefix="/v1", responses=problem_responses(429))


@router.get("/devices", response_model=DevicePage, tags=["devices"], responses=ON_INPUT)
async def list_devices(
    ctx: Context,
    zone: int | None = Query(None, ge=0, le=UINT32, description="grid zone"),
    kind: str | None = Query(None, max_length=20, json_schema_extra={"enum": list(params.KIND_WORDS)},
                             description="0..6 or ev_charger, heat_pump, hvac, battery, water_heater, household "
                                         "(alias: other), site_meter"),
    owner: str | None = Query(None, max_length=42, json_schema_extra=_ADDRESS, description="owner address"),
    active: bool | None = Query(None, description="only active (true) or inactive (false) devices"),
    site: str | None = Query(None, max_length=42, json_schema_extra=_ADDRESS,
                             description="only the devices registered at this site meter"),
    cursor: str | None = Cursor,
    limit: int = Limit,
):
    """Registered devices ordered by address, with filters and cursor pagination."""
    where = DeviceFilter(zone=zone, kind=params.kind(kind),
                         owner=params.address(owner, "owner") if owner is not None else None, active=active,
                         site=params.address(site, "site") if site is not None else None)
    try:
        return json_response(await ctx.call(ctx.reads.devices, where, cursor, limit))
    except BadCursor as error:
        raise _cursor_problem(error) from None


@router.get("/devices/{address}", response_model=DeviceOut, tags=["devices"], responses=ON_LOOKUP)
async def get_device(ctx: Context, address: str = Path(..., max_length=42, json_schema_extra=_ADDRESS)):
    """One device (also an unregistered one, with `registered: false`); a site meter with `siteDevices`."""
    device = await ctx.call(ctx.reads.device, params.address(address, "address"))
    if device is None:
        raise ApiProblem(404, Reason.UNKNOWN_DEVICE, "Unknown device", f"no device {address} was ever registered")
    return json_response(device)


@router.get("/owners/{address}", response_model=OwnerOut, tags=["owners"], responses=ON_INPUT)
async def get_owner(ctx: Context, address: str = Path(..., max_length=42, json_schema_extra=_ADDRESS)):
    """An owner's device counts, stake and rewards (zeros for an address with none)."""
    return json_response(await ctx.call(ctx.reads.owner, params.address(address, "address")))


@router.get("/owners/{address}/devices", response_model=DevicePage, tags=["owners"], responses=ON_INPUT)
async def owner_devices(ctx: Context, address: str = Path(..., max_length=42, json_schema_extra=_ADDRESS),
                        cursor: str | None = Cursor,
                        limit: int = Limit):
    """An owner's registered devices, ordered by address."""
    where = DeviceFilter(owner=params.address(address, "address"))
    try:
        return json_response(await ctx.call(ctx.reads.devices, where, cursor, limit))
    except BadCursor as error:
        raise _cursor_problem(error) from None


@router.get("/rewards/{account}", response_model=RewardsOut, tags=["rewards"], responses=ON_INPUT)
async def get_rewards(ctx: Context, account: str = Path(..., max_length=42, json_schema_extra=_ADDRESS)):
    """Cumulative, claimed and claimable amounts per token, with the Merkle proof for
    `RewardDistributor.claim(account, token, cumulative, proof)`."""
    return json_response(await ctx.call(ctx.reads.rewards, params.address(account, "account")))


@router.get("/requests", response_model=RequestPage, tags=["requests"], responses=ON_INPUT)
async def list_requests(
    ctx: Context,
    zone: int | None = Query(None, ge=0, le=UINT32),
    status: RequestStatusName | None = Query(None),
    buyer: str | None = Query(None, max_length=42, json_schema_extra=_ADDRESS),
    time_from: int | None = Query(None, alias="from", ge=0, le=2**40, description="windows ending after (unix s)"),
    time_to: int | None = Query(None, alias="to", ge=0, le=2**40, description="windows starting before (unix s)"),
    cursor: str | None = Cursor,
    limit: int = Limit,
):
    """Requests, newest first, filtered by zone, status, buyer and time window."""
    if time_from is not None and time_to is not None and time_from >= time_to:
        raise ApiProblem(400, Reason.INVALID_PARAMETER, "Invalid time range", "from must be before to")
    buyer_address = params.address(buyer, "buyer") if buyer is not None else None
    try:
        return json_response(await ctx.call(ctx.reads.requests, zone, status, buyer_address, time_from, time_to,
                                            cursor, limit))
    except BadCursor as error:
        raise _cursor_problem(error) from None


@router.get("/requests/{request_id}", response_model=RequestOut, tags=["requests"], responses=ON_LOOKUP)
async def get_request(ctx: Context, request_id: int = Path(..., ge=1, le=2**63 - 1)):
    """One request; once its report's document is verified, `deliveredWh` and per-device `devices`."""
    found = await ctx.call(ctx.reads.request, request_id)
    if found is None:
        raise ApiProblem(404, Reason.UNKNOWN_REQUEST, "Unknown request", f"no request {request_id} on chain (yet)")
    return json_response(found)


@router.get("/requests/{request_id}/allocation", response_model=AllocationOut, tags=["requests"],
            responses=problem_responses(400, 404, 503))
async def request_allocation(ctx: Context, request_id: int = Path(..., ge=1, le=2**63 - 1)):
    """The request's clearing: every accepted device with its site and watts, the clearing price and
    the control sites, as an oracle published it; served only once its leaves matched the root
    posted on chain and its signer is an active oracle."""
    found = await ctx.call(ctx.reads.allocation, request_id)
    if found is None:
        raise ApiProblem(404, Reason.UNKNOWN_REQUEST, "Unknown request", f"no request {request_id} on chain (yet)")
    if found == "not_posted":
        raise ApiProblem(404, Reason.UNKNOWN_ALLOCATION, "Not cleared yet",
                         f"request {request_id} has no allocation on chain yet (the oracles post it after gate closure)")
    if found == "not_fetched":
        raise ApiProblem(503, Reason.ALLOCATION_NOT_FETCHED, "Allocation not fetched yet",
                         f"request {request_id}'s allocation is posted, but no oracle has served a document matching "
                         "its root yet; retry shortly", headers={"Retry-After": "5"})
    return json_response(found)


@router.get("/requests/{request_id}/sites", response_model=SitePage, tags=["requests"], responses=ON_LOOKUP)
async def request_sites(ctx: Context, request_id: int = Path(..., ge=1, le=2**63 - 1),
                        group: Literal["treatment", "control"] | None = Query(
                            None, description="only dispatched (treatment) or held-out (control) units"),
                        cursor: str | None = Cursor, limit: int = Limit):
    """A per-site request's settlement units by address: holdout group and paid energy, from its report's
    verified document (empty before that, and for a request settled per device)."""
    try:
        found = await ctx.call(ctx.reads.request_sites, request_id, group, cursor, limit)
    except BadCursor as error:
        raise _cursor_problem(error) from None
    if found is None:
        raise ApiProblem(404, Reason.UNKNOWN_REQUEST, "Unknown request", f"no request {request_id} on chain (yet)")
    return json_response(found)


@router.get("/reports", response_model=ReportPage, tags=["reports"], responses=ON_INPUT)
async def list_reports(ctx: Context, status: ReportStatusName | None = Query(None),
                       cursor: str | None = Cursor, limit: int = Limit):
    """Settlement reports, newest epoch first, filtered by status."""
    try:
        return json_response(await ctx.call(ctx.reads.reports, status, cursor, limit))
    except BadCursor as error:
        raise _cursor_problem(error) from None


@router.get("/reports/{digest}", response_model=ReportOut, tags=["reports"], responses=ON_LOOKUP)
async def get_report(ctx: Context, digest: str = Path(..., max_length=66, json_schema_extra=_DIGEST)):
    """One report by its EIP-712 digest."""
    found = await ctx.call(ctx.reads.report, params.digest(digest))
    if found is None:
        raise ApiProblem(404, Reason.UNKNOWN_REPORT, "Unknown report", f"no report {digest} was submitted")
    return json_response(found)


@router.get("/zones/{zone}/stats", response_model=ZoneStats, tags=["stats"], responses=ON_INPUT)
async def zone_stats(ctx: Context, zone: int = Path(..., ge=0, le=UINT32)):
    """Devices, active capacity, requests, delivered energy and payouts of one zone."""
    return json_response(await ctx.call(ctx.reads.zone_stats, zone))


@router.get("/zones", response_model=ZoneList, tags=["stats"])
async def list_zones(ctx: Context):
    """Every zone with a registered device or a request, each with its statistics."""
    return json_response({"items": await ctx.call(ctx.reads.zones)})


@router.get("/stats", response_model=NetworkStats, tags=["stats"])
async def network_stats(ctx: Context):
    """Network-wide totals."""
    progress = ctx.progress()
    return json_response(await ctx.call(ctx.reads.network_stats, progress.indexed_block, progress.head_block))


@router.get("/tokens", response_model=TokenList, tags=["stats"])
async def tokens(ctx: Context):
    """The tokens amounts are in: the stake token and the payment tokens, with symbol and decimals read
    from the chain (amounts everywhere are decimal strings of these tokens' base units)."""
    return json_response({"items": await ctx.call(token_rows, ctx.engine)})
