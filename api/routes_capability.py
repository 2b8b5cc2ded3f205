"""Capability records (proof of flexibility): GET /v1/sites/{address}/capability (api.capability)."""

from __future__ import annotations

from fastapi import APIRouter, Path

from api import params
from api.capability import site_capability
from api.deps import Context
from api.openapi import problem_responses
from api.problems import ApiProblem, Reason
from api.responses import json_response
from api.schemas import ADDRESS_PATTERN, SiteCapability

router = APIRouter(prefix="/v1", responses=problem_responses(429))
_ADDRESS = {"pattern": ADDRESS_PATTERN}


@router.get("/sites/{address}/capability", response_model=SiteCapability, tags=["devices"],
            responses=problem_responses(400, 404))
async def get_site_capability(ctx: Context, address: str = Path(..., max_length=42, json_schema_extra=_ADDRESS)):
    """A site's capability records from verified report documents, newest first, each with whether its
    report is final, and `latest`: the newest final one, what caps the site's offers (null: never
    tested, so it is held to the network's probationary cap)."""
    site = params.address(address, "address")
    if await ctx.call(ctx.reads.device_owner, site) is None and await ctx.call(ctx.reads.device, site) is None:
        raise ApiProblem(404, Reason.UNKNOWN_DEVICE, "Unknown device", f"no device {address} was ever registered")
    return json_response(await ctx.call(site_capability, ctx.engine, site))
