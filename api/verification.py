"""A per-site request's verification, as the oracle's report document publishes it, in mirror form.

The document's `RequestOutcome.verification` (protocol.report_document; written by the oracle's
per-site settlement) is a free JSON object: the request's holdout share and gate closure, the
holdout seed, the estimator, the portfolio estimate (`portfolio`: estimated Wh, its 95 % interval,
the rule that produced it, portfolio or site_fallback, and why it fell back) and one entry per
settlement unit (`sites`: its holdout group, treatment or control, and the Wh it was paid for).

The Merkle root and the requests hash a document is verified by do not cover this object, so it
is the oracle's account of how it settled, not a chain fact. It is read strictly (keys the API
does not serve are ignored): a value of the wrong type, an unknown group or a site listed twice
makes the whole verification unreadable (`UnreadableVerification`), and the document is then
stored without it (its payouts and proofs stay usable). The summary is bounded (no per-site
list; the units are rows of `report_sites`, at most 255 devices each).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from eth_utils import is_address, to_checksum_address
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

TREATMENT = "treatment"  # dispatched
CONTROL = "control"  # held out
MAX_DEVICES_PER_SITE = 255  # DeviceRegistry.MAX_DEVICES_PER_SITE: a unit's devices (a lone device: 1)
MAX_TEXT = 200  # longest rule, method, estimator or reason kept (the summary is served as is)


def _address(value: str) -> str:
    if not is_address(value):
        raise ValueError(f"{value[:60]!r} is not an address")
    return to_checksum_address(value)


Address = Annotated[str, AfterValidator(_address)]
INT64 = 2**63 - 1  # SQL BIGINT, and what orjson serves
Wh = Annotated[int, Field(strict=True, ge=-INT64, le=INT64)]
Count = Annotated[int, Field(strict=True, ge=0, le=INT64)]
Text = Annotated[str, Field(max_length=MAX_TEXT)]


class _Lenient(BaseModel):
    """Unknown keys are ignored (the oracle may publish more than the API serves)."""

    model_config = ConfigDict(extra="ignore")


class _Portfolio(_Lenient):
    estimated_wh: Wh | None = None
    ci95_wh: tuple[Wh, Wh] | None = None
    method: Text | None = None
    requested_method: Text | None = None
    rule: Text | None = None
    fallback_reason: Text | None = None
    treatment: Count | None = None
    control: Count | None = None
    quality: dict[str, Any] | None = None


class _Site(_Lenient):
    site: Address
    group: Literal["treatment", "control"]
    committedW: Count = 0
    devices: list[Address] = Field(default_factory=list, max_length=MAX_DEVICES_PER_SITE)
    paidWh: Count = 0
    weightWh: Count = 0


class _Verification(_Lenient):
    holdoutBps: Annotated[int, Field(strict=True, ge=0, le=10_000)] | None = None
    gateClosure: Count | None = None
    seed: Annotated[str, Field(max_length=66)] | None = None
    estimator: Text | None = None
    portfolio: _Portfolio | None = None
    error: Annotated[str, Field(max_length=2_000)] | None = None
    sites: list[_Site] = Field(default_factory=list)


class UnreadableVerification(ValueError):
    """The document's verification object is not of the form this API reads; the message says why."""


@dataclass(frozen=True)
class ReadVerification:
    """A request's verification summary (JSON-ready) and its settlement units (rows of report_sites)."""

    summary: dict[str, Any]
    sites: list[dict[str, Any]]


def read_verification(raw: dict[str, Any]) -> ReadVerification:
    """The summary and per-site rows of one request's `verification`; raises UnreadableVerification."""
    try:
        parsed = _Verification.model_validate(raw)
    except ValidationError as error:
        raise UnreadableVerification(f"verification: {str(error)[:500]}") from None
    seen: set[str] = set()
    for site in parsed.sites:
        if site.site in seen:
            raise UnreadableVerification(f"verification: site {site.site} is listed twice")
        seen.add(site.site)
    portfolio = parsed.portfolio or _Portfolio()
    quality = portfolio.quality or {}
    passed = quality.get("passed")
    dispatched = [s for s in parsed.sites if s.group == TREATMENT]
    summary = {
        "holdoutBps": parsed.holdoutBps, "gateClosure": parsed.gateClosure, "seed": parsed.seed,
        "estimator": parsed.estimator, "estimatedWh": portfolio.estimated_wh,
        "ci95Wh": list(portfolio.ci95_wh) if portfolio.ci95_wh is not None else None,
        "method": portfolio.method, "rule": portfolio.rule, "fallbackReason": portfolio.fallback_reason,
        "qualityPassed": passed if isinstance(passed, bool) else None,
        "treatmentInEstimate": portfolio.treatment, "controlInEstimate": portfolio.control,
        "error": parsed.error, "siteCount": len(parsed.sites), "dispatchedSites": len(dispatched),
        "heldOutSites": len(parsed.sites) - len(dispatched),
        "paidWh": min(INT64, sum(s.paidWh for s in parsed.sites)),
    }
    rows = [{"site": s.site, "group_name": s.group, "committed_w": s.committedW, "paid_wh": s.paidWh,
             "weight_wh": s.weightWh, "devices": json.dumps(s.devices)} for s in parsed.sites]
    return ReadVerification(summary, rows)
