"""The allocation document: the published form of one request's clearing (protocol.clearing).

An oracle publishes it at GET /v1/allocations/{requestId}; peers, the API and auditors read it. It
is trusted only as far as it matches the chain:

    a document matches request r's posted allocation when
        its requestId is r,
        the Merkle root recomputed from its `accepted` leaves equals the root posted on chain
          (the document's own `root` field must equal it too),
        its acceptedW equals the posted acceptedW (and the sum of its acceptances), and
        its clearingPrice equals the posted clearing price, and
        its availabilityPrice equals the posted availability price (0 when the request pays none).

Everything the root does not cover (the offer count, the cap and margin, the control sites) is the
publishing oracle's word; a reader that needs it signed takes the oracle's EIP-712 signature from
the same answer. Amounts are JSON integers (watts, token base units per kWh); addresses are checked
and checksummed; lists are bounded before anything is built from them.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt

from protocol.addresses import checksummed
from protocol.clearing import MAX_MARGIN_BPS, Acceptance, Allocation

MAX_ACCEPTANCES = 200_000  # devices accepted by one request (the 100k-site target, two devices each)
MAX_CONTROL_SITES = 200_000
HEX32_PATTERN = r"^0x[0-9a-fA-F]{64}$"
_UINT256 = 2**256


def _address(value: Any) -> str:
    if not isinstance(value, str) or len(value) != 42:
        raise ValueError("an address is a 0x-prefixed 40-hex-digit string")
    return checksummed(value)


Address = Annotated[str, BeforeValidator(_address)]
Watts = Annotated[StrictInt, Field(gt=0, lt=2**64)]
Amount = Annotated[StrictInt, Field(ge=0, lt=_UINT256)]


class AllocationMismatch(ValueError):
    """A document does not match the allocation posted on chain; the message says how."""


class AcceptedEntry(BaseModel):
    """One accepted device: the watts it must shed, and its site."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    device: Address
    site: Address
    watts: Watts


class AllocationDocument(BaseModel):
    """One request's clearing result as an oracle publishes it (module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requestId: Annotated[StrictInt, Field(ge=1, lt=_UINT256)]
    root: Annotated[str, Field(pattern=HEX32_PATTERN)]
    acceptedW: Annotated[StrictInt, Field(ge=0, lt=2**64)]
    clearingPrice: Amount
    availabilityPrice: Amount = 0
    capW: Annotated[StrictInt, Field(ge=0, lt=2**64)]
    marginBps: Annotated[StrictInt, Field(ge=0, le=MAX_MARGIN_BPS)]
    offers: Annotated[StrictInt, Field(ge=0, lt=2**32)]
    accepted: Annotated[list[AcceptedEntry], Field(max_length=MAX_ACCEPTANCES)]
    controlSites: Annotated[list[Address], Field(max_length=MAX_CONTROL_SITES)]

    @classmethod
    def of(cls, allocation: Allocation, offers: int) -> "AllocationDocument":
        """The published form of `allocation`, which cleared `offers` offer tranches."""
        return cls(requestId=allocation.request_id, root="0x" + allocation.root().hex(),
                   acceptedW=allocation.accepted_w, clearingPrice=allocation.clearing_price,
                   availabilityPrice=allocation.availability_price, capW=allocation.cap_w, marginBps=allocation.margin_bps, offers=offers,
                   accepted=[AcceptedEntry(device=a.device, site=a.site, watts=a.watts) for a in allocation.accepted],
                   controlSites=list(allocation.control_sites))

    def allocation(self) -> Allocation:
        """The Allocation this document describes; ValueError if it is inconsistent (unsorted or
        duplicate devices, acceptances that do not add up to acceptedW, acceptedW above capW, or a
        `root` field that is not the root of its own leaves)."""
        accepted = tuple(Acceptance(e.device, e.site, e.watts)
                         for e in sorted(self.accepted, key=lambda e: e.device.lower()))
        allocation = Allocation(self.requestId, self.clearingPrice, self.acceptedW, self.capW, self.marginBps,
                                accepted, tuple(self.controlSites), self.availabilityPrice)
        if "0x" + allocation.root().hex() != self.root.lower():
            raise ValueError(f"allocation of request {self.requestId}: its root field is not the root of its leaves")
        return allocation

    def verify(self, request_id: int, root: str, accepted_w: int, clearing_price: int,
               availability_price: int = 0) -> Allocation:
        """The Allocation, if this document matches request `request_id`'s posted allocation (module
        docstring); AllocationMismatch says what differs."""
        if self.requestId != request_id:
            raise AllocationMismatch(f"the document is for request {self.requestId}, not {request_id}")
        try:
            allocation = self.allocation()
        except ValueError as error:
            raise AllocationMismatch(str(error)) from None
        if "0x" + allocation.root().hex() != root.lower():
            raise AllocationMismatch(f"request {request_id}: the document's root 0x{allocation.root().hex()} is not "
                                     f"the posted root {root}")
        if allocation.accepted_w != accepted_w:
            raise AllocationMismatch(f"request {request_id}: the document accepts {allocation.accepted_w} W, the "
                                     f"chain {accepted_w} W")
        if allocation.clearing_price != clearing_price:
            raise AllocationMismatch(f"request {request_id}: the document's clearing price {allocation.clearing_price}"
                                     f" is not the posted {clearing_price}")
        if allocation.availability_price != availability_price:
            raise AllocationMismatch(f"request {request_id}: the document's availability price "
                                     f"{allocation.availability_price} is not the posted {availability_price}")
        return allocation

    def as_json(self) -> dict[str, Any]:
        """The document as JSON-ready data (the published form)."""
        return self.model_dump(mode="json")
