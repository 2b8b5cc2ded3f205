"""The buyer's reads from the negawatt API over HTTP: one request, a buyer's requests, a zone's
supply curve. Every answer is bounded in size before it is parsed and read through a pydantic model
that keeps only what the buyer shows (unknown keys are ignored); an API that cannot be reached, or
answers something else, raises ApiUnavailable with the reason, so the caller can fall back on the
chain."""

from __future__ import annotations

import json
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_ANSWER_BYTES = 2 * 1024 * 1024
MAX_PAGES = 50  # the list reads at most this many pages (100 requests each)
AMOUNT = r"^[0-9]{1,78}$"


class ApiUnavailable(RuntimeError):
    """The API could not be reached or gave an unusable answer; the message says which."""


class NotFound(ApiUnavailable):
    """The API answered 404."""


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ApiVerification(_Lenient):
    """The part of the API's VerificationOut the buyer shows."""

    estimator: str | None = Field(None, max_length=200)
    estimatedWh: int | None = None
    ci95Wh: list[int] | None = Field(None, min_length=2, max_length=2)
    method: str | None = Field(None, max_length=200)
    rule: str | None = Field(None, max_length=200)
    fallbackReason: str | None = Field(None, max_length=200)
    qualityPassed: bool | None = None
    error: str | None = Field(None, max_length=500)
    siteCount: int | None = None
    dispatchedSites: int | None = None
    heldOutSites: int | None = None
    paidWh: int | None = None


class ApiRequest(_Lenient):
    """The part of the API's RequestOut the buyer shows."""

    id: int
    buyer: str = Field(max_length=42)
    zone: int
    start: int
    end: int
    targetW: int
    pricePerKWh: str = Field(pattern=AMOUNT)
    paymentToken: str = Field(max_length=42)
    maxBudget: str = Field(pattern=AMOUNT)
    status: str = Field(max_length=20)
    payout: str | None = Field(None, pattern=AMOUNT)
    refund: str | None = Field(None, pattern=AMOUNT)
    acceptedW: int | None = None
    clearingPrice: str | None = Field(None, pattern=AMOUNT)
    allocationRoot: str | None = Field(None, max_length=66)
    deliveredWh: int | None = None
    verification: ApiVerification | None = None


class ApiRequestPage(_Lenient):
    items: list[ApiRequest] = Field(max_length=1_000)
    next: str | None = Field(None, max_length=500)


class SupplyPoint(_Lenient):
    """One point of a zone's supply curve: `watts` available at or below `price` (base units per kWh)."""

    price: str = Field(pattern=AMOUNT)
    watts: int = Field(ge=0)


class ApiSupply(_Lenient):
    zone: int
    start: int
    end: int
    sites: int | None = None
    curve: list[SupplyPoint] = Field(max_length=10_000)


def _get(base_url: str, path: str, params: dict[str, Any] | None, timeout: float) -> Any:
    url = base_url.rstrip("/") + path
    try:
        with httpx.Client(timeout=timeout) as client, client.stream("GET", url, params=params) as answer:
            body = b""
            for chunk in answer.iter_bytes():
                body += chunk
                if len(body) > MAX_ANSWER_BYTES:
                    raise ApiUnavailable(f"the API's answer to {path} is larger than {MAX_ANSWER_BYTES} bytes")
            status = answer.status_code
    except httpx.HTTPError as error:
        raise ApiUnavailable(f"the API at {base_url} cannot be reached ({type(error).__name__}: {error})") from None
    if status == 404:
        raise NotFound(f"the API answered 404 for {path}")
    if status != 200:
        raise ApiUnavailable(f"the API answered {status} for {path}{_problem(body)}")
    try:
        return json.loads(body)
    except ValueError:
        raise ApiUnavailable(f"the API's answer to {path} is not JSON") from None


def _problem(body: bytes) -> str:
    """The problem document's detail of an error answer (RFC 9457), shortened; empty when none."""
    try:
        raw = json.loads(body)
    except ValueError:
        return ""
    detail = raw.get("detail") or raw.get("title") if isinstance(raw, dict) else None
    return f": {str(detail)[:200]}" if detail else ""


def _parse(model: type[BaseModel], raw: Any, path: str) -> Any:
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise ApiUnavailable(f"the API's answer to {path} is unusable: {where}: {first['msg']}") from None


def fetch_request(base_url: str, request_id: int, timeout: float = 10.0) -> ApiRequest | None:
    """GET /v1/requests/{id}: the API's view of one request, or None when it does not know it (yet)."""
    path = f"/v1/requests/{int(request_id)}"
    try:
        return _parse(ApiRequest, _get(base_url, path, None, timeout), path)
    except NotFound:
        return None


def fetch_requests(base_url: str, buyer: str, timeout: float = 10.0) -> list[ApiRequest]:
    """GET /v1/requests?buyer=: the buyer's requests, newest first (every page, up to MAX_PAGES)."""
    items: list[ApiRequest] = []
    cursor: str | None = None
    for _ in range(MAX_PAGES):
        params: dict[str, Any] = {"buyer": buyer, "limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = _parse(ApiRequestPage, _get(base_url, "/v1/requests", params, timeout), "/v1/requests")
        items.extend(page.items)
        cursor = page.next
        if not cursor:
            break
    return items


def fetch_supply(base_url: str, zone: int, start: int, end: int, timeout: float = 10.0) -> ApiSupply:
    """GET /v1/zones/{zone}/supply: the zone's forecast supply curve for [start, end); raises NotFound
    when the API serves no forecasts."""
    path = f"/v1/zones/{int(zone)}/supply"
    return _parse(ApiSupply, _get(base_url, path, {"start": start, "end": end}, timeout), path)
