"""HTTP routes of the clearing (issue 14): what this oracle cleared, and a device's acceptance proof.

    GET /v1/allocations/{requestId}                    {"allocation": {...}, "signature", "signer"}
        this oracle's allocation of a request (oracle.clearing_service): root, accepted W, uniform
        clearing price, cap and margin, every accepted device with its site and watts, the control
        sites; signed (EIP-712 Allocation under the OracleHub domain). Peers collect the signatures
        from here; buyers and auditors read the clearing from here.
    GET /v1/allocations/{requestId}/devices/{device}   {"requestId", "device", "acceptedW",
        "clearingPrice", "root", "proof"}: what a node checks against the on-chain root
        (protocol.clearing.verify_acceptance) before it curtails anything.

404 problems: `unknown_allocation` (not cleared here yet) and `not_accepted` (the device has no leaf).
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from eth_utils import to_checksum_address
from fastapi import APIRouter, Depends, FastAPI, Path, Request
from pydantic import BaseModel, Field

from oracle.clearing_service import Clearer
from oracle.ingest_api import problem
from oracle.openapi_doc import install_openapi, problem_responses
from protocol.problems import Reason
from protocol.proposals import ADDRESS_PATTERN

_ADDRESS = re.compile(ADDRESS_PATTERN[:-1])
HEX32 = r"^0x[0-9a-fA-F]{64}$"


class AcceptedOut(BaseModel):
    device: str = Field(pattern=ADDRESS_PATTERN)
    site: str = Field(pattern=ADDRESS_PATTERN)
    watts: int


class AllocationOut(BaseModel):
    """One request's clearing result."""

    requestId: int
    root: str = Field(pattern=HEX32)
    acceptedW: int
    clearingPrice: int
    availabilityPrice: int
    capW: int
    marginBps: int
    offers: int
    accepted: list[AcceptedOut]
    controlSites: list[str]


class SignedAllocationOut(BaseModel):
    """An allocation and this oracle's signature of it."""

    allocation: AllocationOut
    signature: str
    signer: str = Field(pattern=ADDRESS_PATTERN)


class AcceptanceOut(BaseModel):
    """A device's leaf in the allocation tree, with its Merkle proof."""

    requestId: int
    device: str = Field(pattern=ADDRESS_PATTERN)
    acceptedW: int
    clearingPrice: int
    root: str = Field(pattern=HEX32)
    proof: list[str]


async def get_clearer(request: Request) -> Clearer:
    """The app's Clearer (`app.state.clearer`)."""
    return request.app.state.clearer


ClearerDep = Annotated[Clearer, Depends(get_clearer)]
RequestIdPath = Annotated[int, Path(ge=1, le=2**63 - 1, description="a FlexMarket request id")]
DevicePath = Annotated[str, Path(description="a device address", json_schema_extra={"pattern": ADDRESS_PATTERN})]

router = APIRouter(prefix="/v1")


@router.get("/allocations/{request_id}", response_model=SignedAllocationOut, responses=problem_responses(404))
def get_allocation(clearer: ClearerDep, request_id: RequestIdPath) -> Any:
    """This oracle's signed allocation of `request_id`."""
    stored = clearer.stored(request_id)
    if stored is None:
        return problem(404, Reason.UNKNOWN_ALLOCATION, "Not cleared by this oracle (yet)", str(request_id))
    return {"allocation": stored.document, "signature": "0x" + stored.signature.hex(), "signer": clearer.address}


@router.get("/allocations/{request_id}/devices/{device}", response_model=AcceptanceOut,
            responses=problem_responses(400, 404))
def get_acceptance(clearer: ClearerDep, request_id: RequestIdPath, device: DevicePath) -> Any:
    """`device`'s acceptance in `request_id` with its proof against the allocation root."""
    if not _ADDRESS.fullmatch(device):
        return problem(400, Reason.INVALID_ADDRESS, "Not a 20-byte hex address", device[:64])
    stored = clearer.stored(request_id)
    if stored is None:
        return problem(404, Reason.UNKNOWN_ALLOCATION, "Not cleared by this oracle (yet)", str(request_id))
    address = to_checksum_address(device)
    acceptance = stored.allocation.acceptance(address)
    if acceptance is None:
        return problem(404, Reason.NOT_ACCEPTED, "The device was not accepted", address)
    allocation = stored.allocation
    return {"requestId": request_id, "device": address, "acceptedW": acceptance.watts,
            "clearingPrice": allocation.clearing_price, "root": "0x" + allocation.root().hex(),
            "proof": ["0x" + p.hex() for p in allocation.proof(address)]}


def add_allocation_routes(app: FastAPI, clearer: Clearer) -> None:
    """Mount the clearing routes on the oracle's app."""
    app.state.clearer = clearer
    app.include_router(router)
    app.openapi_schema = None
    install_openapi(app)
