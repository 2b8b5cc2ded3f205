"""HTTP route of proof of flexibility: the cap this oracle clears a site's offers with.

    GET /v1/sites/{site}/capability   {"site", "capW", "probationW", "records": [...]}
        `capW`: the most the site's offers may add up to in one request (protocol.capability: its
        latest passed test's testedW, else the network's probationary cap; null on a network that runs
        no capability tests); `records`: its capability records in this oracle's finalized reports,
        newest first. Nodes read it to cap their own offers and forecasts, as the clearing will.
"""

from __future__ import annotations

import re
from typing import Any

from eth_utils import to_checksum_address
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel, Field

from oracle.allocation_api import ClearerDep, DevicePath
from oracle.ingest_api import problem
from oracle.openapi_doc import install_openapi, problem_responses
from protocol.problems import Reason
from protocol.proposals import ADDRESS_PATTERN

_ADDRESS = re.compile(ADDRESS_PATTERN[:-1])


class RecordOut(BaseModel):
    site: str = Field(pattern=ADDRESS_PATTERN)
    requestId: int
    testedW: int
    passed: bool
    testedAt: int


class CapabilityOut(BaseModel):
    """A site's cap and capability records (see the module)."""

    site: str = Field(pattern=ADDRESS_PATTERN)
    capW: int | None
    probationW: int
    records: list[RecordOut]


router = APIRouter(prefix="/v1")


@router.get("/sites/{site}/capability", response_model=CapabilityOut, responses=problem_responses(400))
def get_capability(clearer: ClearerDep, site: DevicePath) -> Any:
    """The cap on `site`'s offers and its capability records."""
    if not _ADDRESS.fullmatch(site):
        return problem(400, Reason.INVALID_ADDRESS, "Not a 20-byte hex address", site[:64])
    address = to_checksum_address(site)
    cap, records = clearer.capability(address)
    return {"site": address, "capW": cap, "probationW": clearer.tests.probation_w,
            "records": [r.as_json() for r in records]}


def add_capability_routes(app: FastAPI, clearer: Any) -> None:
    """Mount the capability route on the oracle's app (after add_allocation_routes)."""
    app.state.clearer = clearer
    app.include_router(router)
    app.openapi_schema = None
    install_openapi(app)
