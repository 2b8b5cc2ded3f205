"""Routes the web app's views read (api.app_reads): an owner's events, a settled request's plot,
the oracles, and what a browser needs to reach the chain. Read-only, like api.routes_chain."""

from __future__ import annotations

from fastapi import APIRouter, Path, Query

from api import params
from api.app_reads import oracles, owner_events, request_series
from api.deps import Context
from api.openapi import problem_responses
from api.problems import ApiProblem, Reason
from api.reads import BadCursor
from api.responses import json_response
from api.schemas import ADDRESS_PATTERN, CURSOR_PATTERN, NetworkInfo, OracleList, OwnerEventPage, RequestSeries
from api.tokens import token_rows

router = APIRouter(prefix="/v1", responses=problem_responses(429))
_ADDRESS = {"pattern": ADDRESS_PATTERN}


@router.get("/network", response_model=NetworkInfo, tags=["stats"])
async def network(ctx: Context):
    """The chain id, a JSON-RPC URL a browser may use, the contracts' addresses and the payment tokens."""
    info = dict(ctx.network or {"chainId": ctx.auth.chain_id, "rpcUrl": None, "contracts": {}, "paymentTokens": []})
    seen = [t["address"] for t in await ctx.call(token_rows, ctx.engine) if "payment" in t["roles"]]
    info["paymentTokens"] = sorted({*info.get("paymentTokens", []), *seen})
    info["devnet"] = info["chainId"] == 31337
    return json_response(info)


@router.get("/owners/{address}/events", response_model=OwnerEventPage, tags=["owners"],
            responses=problem_responses(400))
async def get_owner_events(ctx: Context, address: str = Path(..., max_length=42, json_schema_extra=_ADDRESS),
                           cursor: str | None = Query(None, min_length=1, max_length=200,
                                                      json_schema_extra={"pattern": CURSOR_PATTERN},
                                                      description="the `next` value of the previous page"),
                           limit: int = Query(50, ge=1, le=200, description="page size")):
    """The owner's settlement units in each request, newest first: dispatched or held out, the watts
    accepted, and once settled the delivered energy, payout and the oracles' reasons."""
    try:
        return json_response(await ctx.call(owner_events, ctx.engine, params.address(address, "address"),
                                            cursor, limit))
    except BadCursor as error:
        raise ApiProblem(400, Reason.INVALID_CURSOR, "Invalid cursor", f"cursor: {error}") from None


@router.get("/requests/{request_id}/series", response_model=RequestSeries, tags=["requests"],
            responses=problem_responses(400, 404))
async def get_request_series(ctx: Context, request_id: int = Path(..., ge=1, le=2**63 - 1)):
    """A settled request's dispatched and held-out groups: baseline and actual energy per interval,
    summed over each group's units from the verified report document, with the estimate."""
    found = await ctx.call(request_series, ctx.engine, request_id)
    if found is None:
        raise ApiProblem(404, Reason.UNKNOWN_REQUEST, "Unknown request", f"no request {request_id} on chain (yet)")
    if found == "not_settled":
        raise ApiProblem(404, Reason.NOT_SETTLED, "Not settled yet",
                         f"request {request_id} has no verified report document with baseline records yet")
    return json_response(found)


@router.get("/oracles", response_model=OracleList, tags=["reports"])
async def list_oracles(ctx: Context):
    """The OracleHub's oracles with their published URLs and the newest report each submitted or signed."""
    return json_response({"items": await ctx.call(oracles, ctx.engine)})
