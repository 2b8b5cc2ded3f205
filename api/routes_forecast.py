"""Day-ahead flexibility forecasts: sites post their signed forecasts, buyers read a zone's supply curve.

    POST /v1/forecasts                        a site meter's signed FlexForecast (protocol.forecast)
    GET  /v1/zones/{zone}/supply?start=&end=  kW available at or below each price over a window

A forecast is admitted only if its signature recovers to `site` (400 bad_signature), then by
api.forecasts' rule: a registered (403 unknown_device), active (403 device_inactive) site meter
(403 forbidden) of the forecast's zone (422 zone_mismatch) offering no more than its rating in any
hour (422 watts_out_of_range), with a sequence above the stored one (409 sequence_conflict). An
invalid body is a 400 problem naming each field; the body is capped like every POST (api.app); an
API without a chain (no DeviceRegistry to verify against) answers 503. The
supply curve's rule is api.forecasts'; amounts are decimal strings, power integer W.
A module-level router (mounted by api.app); the app state comes in through api.deps.
"""

from __future__ import annotations

import logging
import time
from typing import Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from api.deps import Context
from api.forecasts import ForecastStore, Refused
from api.openapi import problem_responses
from api.problems import ApiProblem, Reason
from api.responses import json_response
from api.schemas import Address, Amount
from protocol.forecast import MAX_START, MAX_ZONE, ForecastMessage

log = logging.getLogger(__name__)
SIGNATURE_BYTES = 65
_TITLES = {"unknown_device": "Unknown site", "forbidden": "Not a site meter", "device_inactive": "Site inactive",
           "zone_mismatch": "Wrong zone", "watts_out_of_range": "Offer above the site's rating",
           "sequence_conflict": "Stale sequence"}

router = APIRouter(prefix="/v1", responses=problem_responses(429), tags=["forecasts"])


class ForecastAccepted(BaseModel):
    """The forecast the API now holds as the site's latest (`duplicate`: it already held this one)."""

    site: Address
    zone: int
    start: int
    end: int
    sequence: int
    status: Literal["stored", "duplicate"]


class SupplyPoint(BaseModel):
    """Watts the zone's sites can hold through the whole window at a clearing price of `price` or more."""

    price: Amount = Field(description="token base units per kWh")
    watts: int


class SupplyCurve(BaseModel):
    """A zone's forecast supply over the whole hours of a window: prices ascending, watts non-decreasing."""

    zone: int
    start: int = Field(description="the window's first whole hour (unix s)")
    end: int = Field(description="the end of the window's last whole hour (unix s)")
    sites: int = Field(description="site meters whose latest forecast covers every hour of the window")
    curve: list[SupplyPoint]


def _store(ctx: Context) -> ForecastStore:
    return ForecastStore(ctx.engine)


@router.post("/forecasts", response_model=ForecastAccepted, responses=problem_responses(400, 403, 409, 413, 422, 503))
def post_forecast(ctx: Context, body: ForecastMessage):
    """Store a site meter's signed day-ahead forecast as its site's latest (the rule and each refusal's
    `code` are in this module's docstring); an identical re-send is answered `duplicate`."""
    forecast = body.to_forecast()
    chain_id, registry = _domain(ctx)
    if len(forecast.signature) != SIGNATURE_BYTES:
        raise ApiProblem(400, Reason.BAD_SIGNATURE, "Bad signature",
                         f"signature: {len(forecast.signature)} bytes, an EIP-712 signature has {SIGNATURE_BYTES}")
    try:
        signer = forecast.signer(chain_id, registry)
    except Exception as error:  # eth-account raises several types on a malformed signature
        raise ApiProblem(400, Reason.BAD_SIGNATURE, "Bad signature", f"signature: {error}"[:300]) from None
    if signer != forecast.site:
        raise ApiProblem(400, Reason.BAD_SIGNATURE, "Bad signature",
                         f"the forecast is signed by {signer}, not by the site meter {forecast.site}")
    try:
        status = _store(ctx).admit(forecast, int(time.time()))
    except Refused as refused:
        raise ApiProblem(refused.status, refused.code, _TITLES.get(refused.code, "Forecast refused"),
                         refused.detail) from None
    log.info("forecast %d of %s (zone %d, from %d, %d h): %s", forecast.sequence, forecast.site, forecast.zone,
             forecast.start, len(forecast.hours), status)
    return json_response({"site": forecast.site, "zone": forecast.zone, "start": forecast.start,
                          "end": forecast.end, "sequence": forecast.sequence, "status": status})


@router.get("/zones/{zone}/supply", response_model=SupplyCurve, responses=problem_responses(400))
async def zone_supply(ctx: Context, zone: int = Path(..., ge=0, le=MAX_ZONE),
                      start: int = Query(..., ge=0, le=MAX_START, description="window start (unix s)"),
                      end: int = Query(..., ge=1, le=MAX_START, description="window end (unix s), after start")):
    """The zone's forecast supply curve over [start, end): for each price, the watts its site meters
    can hold through every hour of the window at that price or below (rule: api.forecasts)."""
    if start >= end:
        raise ApiProblem(400, Reason.INVALID_PARAMETER, "Invalid time range", "start must be before end")
    return json_response(await ctx.call(_store(ctx).supply, zone, start, end))


def _domain(ctx: Context) -> tuple[int, str]:
    """The chain id and DeviceRegistry address forecasts are signed for (the API's own chain)."""
    chain_id = ctx.auth.chain_id
    registry = ctx.registry
    if registry is None:
        raise ApiProblem(503, Reason.CHAIN_UNREACHABLE, "No chain configured",
                         "this API has no DeviceRegistry to verify forecast signatures against")
    return int(chain_id), str(registry)
