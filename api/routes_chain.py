"""Read-only routes over the chain mirror: devices, owners, requests, reports, rewards, statistics."""

from __future__ import annotations

from typing import Literal

from fastapi import FastAPI, Path, Query

from api import params
from api.app import ApiContext, json_response
from api.problems import ApiProblem
from api.reads import BadCursor, DeviceFilter
from api.schemas import (
    DeviceOut,
    DevicePage,
    NetworkStats,
    OwnerOut,
    Problem,
    ReportOut,
    ReportPage,
    RequestOut,
    RequestPage,
    RewardsOut,
    ZoneStats,
)

ERRORS = {400: {"model": Problem, "description": "invalid parameter"},
          404: {"model": Problem, "description": "not found"},
          429: {"model": Problem, "description": "rate limited"}}
UINT32 = 2**32 - 1
Limit = Query(50, ge=1, le=200, description="page size")
Cursor = Query(None, min_length=1, max_length=200, description="the `next` value of the previous page")


def _cursor_problem(error: BadCursor) -> ApiProblem:
    return ApiProblem(400, "invalid_cursor", "Invalid cursor", f"cursor: {error}")


def add_chain_routes(app: FastAPI, ctx: ApiContext) -> None:
    """Mount the read routes."""
    reads = ctx.reads

    @app.get("/v1/devices", response_model=DevicePage, responses=ERRORS, tags=["devices"])
    async def list_devices(
        zone: int | None = Query(None, ge=0, le=UINT32, description="grid zone"),
        kind: str | None = Query(None, max_length=20, description="0..5 or ev_charger, heat_pump, hvac, battery, "
                                                                     "water_heater, other"),
        owner: str | None = Query(None, max_length=42, description="owner address"),
        active: bool | None = Query(None, description="only active (true) or inactive (false) devices"),
        cursor: str | None = Cursor,
        limit: int = Limit,
    ):
        """Registered devices ordered by address, with filters and cursor pagination."""
        where = DeviceFilter(zone=zone, kind=params.kind(kind),
                             owner=params.address(owner, "owner") if owner is not None else None, active=active)
        try:
            return json_response(await ctx.call(reads.devices, where, cursor, limit))
        except BadCursor as error:
            raise _cursor_problem(error) from None

    @app.get("/v1/devices/{address}", response_model=DeviceOut, responses=ERRORS, tags=["devices"])
    async def get_device(address: str = Path(..., max_length=42)):
        """One device (also an unregistered one, with `registered: false`)."""
        device = await ctx.call(reads.device, params.address(address, "address"))
        if device is None:
            raise ApiProblem(404, "unknown_device", "Unknown device", f"no device {address} was ever registered")
        return json_response(device)

    @app.get("/v1/owners/{address}", response_model=OwnerOut, responses=ERRORS, tags=["owners"])
    async def get_owner(address: str = Path(..., max_length=42)):
        """An owner's device counts, stake and rewards (zeros for an address with none)."""
        return json_response(await ctx.call(reads.owner, params.address(address, "address")))

    @app.get("/v1/owners/{address}/devices", response_model=DevicePage, responses=ERRORS, tags=["owners"])
    async def owner_devices(address: str = Path(..., max_length=42), cursor: str | None = Cursor,
                            limit: int = Limit):
        """An owner's registered devices, ordered by address."""
        where = DeviceFilter(owner=params.address(address, "address"))
        try:
            return json_response(await ctx.call(reads.devices, where, cursor, limit))
        except BadCursor as error:
            raise _cursor_problem(error) from None

    @app.get("/v1/rewards/{account}", response_model=RewardsOut, responses=ERRORS, tags=["rewards"])
    async def get_rewards(account: str = Path(..., max_length=42)):
        """Cumulative, claimed and claimable amounts per token, with the Merkle proof for
        `RewardDistributor.claim(account, token, cumulative, proof)`."""
        return json_response(await ctx.call(reads.rewards, params.address(account, "account")))

    @app.get("/v1/requests", response_model=RequestPage, responses=ERRORS, tags=["requests"])
    async def list_requests(
        zone: int | None = Query(None, ge=0, le=UINT32),
        status: Literal["open", "cancelled", "settling", "settled", "expired"] | None = Query(None),
        buyer: str | None = Query(None, max_length=42),
        time_from: int | None = Query(None, alias="from", ge=0, le=2**40, description="windows ending after (unix s)"),
        time_to: int | None = Query(None, alias="to", ge=0, le=2**40, description="windows starting before (unix s)"),
        cursor: str | None = Cursor,
        limit: int = Limit,
    ):
        """Requests, newest first, filtered by zone, status, buyer and time window."""
        if time_from is not None and time_to is not None and time_from >= time_to:
            raise ApiProblem(400, "invalid_parameter", "Invalid time range", "from must be before to")
        buyer_address = params.address(buyer, "buyer") if buyer is not None else None
        try:
            return json_response(await ctx.call(reads.requests, zone, status, buyer_address, time_from, time_to,
                                                cursor, limit))
        except BadCursor as error:
            raise _cursor_problem(error) from None

    @app.get("/v1/requests/{request_id}", response_model=RequestOut, responses=ERRORS, tags=["requests"])
    async def get_request(request_id: int = Path(..., ge=1, le=2**63 - 1)):
        """One request; once its report's document is verified, `deliveredWh` and per-device `devices`."""
        found = await ctx.call(reads.request, request_id)
        if found is None:
            raise ApiProblem(404, "unknown_request", "Unknown request", f"no request {request_id} on chain (yet)")
        return json_response(found)

    @app.get("/v1/reports", response_model=ReportPage, responses=ERRORS, tags=["reports"])
    async def list_reports(status: Literal["pending", "challenged", "final", "discarded"] | None = Query(None),
                           cursor: str | None = Cursor, limit: int = Limit):
        """Settlement reports, newest epoch first, filtered by status."""
        try:
            return json_response(await ctx.call(reads.reports, status, cursor, limit))
        except BadCursor as error:
            raise _cursor_problem(error) from None

    @app.get("/v1/reports/{digest}", response_model=ReportOut, responses=ERRORS, tags=["reports"])
    async def get_report(digest: str = Path(..., max_length=66)):
        """One report by its EIP-712 digest."""
        found = await ctx.call(reads.report, params.digest(digest))
        if found is None:
            raise ApiProblem(404, "unknown_report", "Unknown report", f"no report {digest} was submitted")
        return json_response(found)

    @app.get("/v1/zones/{zone}/stats", response_model=ZoneStats, responses=ERRORS, tags=["stats"])
    async def zone_stats(zone: int = Path(..., ge=0, le=UINT32)):
        """Devices, active capacity, requests, delivered energy and payouts of one zone."""
        return json_response(await ctx.call(reads.zone_stats, zone))

    @app.get("/v1/stats", response_model=NetworkStats, responses=ERRORS, tags=["stats"])
    async def network_stats():
        """Network-wide totals."""
        progress = ctx.progress()
        return json_response(await ctx.call(reads.network_stats, progress.indexed_block, progress.head_block))
