"""A FlexMarket request as every role reads it from the chain: one type for the node and the oracle.

`FlexRequest` holds what FlexMarket's RequestOpened event says (power in W, amounts in base
units) and the request's life-cycle status (`protocol.statuses.RequestStatus`, the contract's
enum). The node only reads the first seven fields, so they come first; `from_event` builds one
from a decoded RequestOpened event, and `with_rules` adds what the RequestRules event emitted right
after it says: the share of committed sites held out and the gate closure (protocol.holdout).

A request whose gate closes before its start is CLEARED (issue 14): its price is the buyer's
ceiling, the oracles post one allocation (`with_allocation`, from AllocationPosted) between the gate
and the start, and only what the allocation accepted is curtailed and paid, at the uniform clearing
price, within `payable_budget`. A request may also pay availability (RequestAvailability: a ceiling per kW
of accepted power per hour of the window, `with_availability`); its allocation then carries the
uniform availability price too. A request whose gate closes at its start (a market without a gate
lead) has no time to clear: it stays a fixed-price call, every commitment accepted at the price.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from eth_utils import to_checksum_address

from protocol.statuses import RequestStatus


def as_bytes32(value: Any) -> bytes:
    """A bytes32 event argument as bytes, whether the decoder gave bytes or 0x-hex text."""
    if isinstance(value, str):
        return bytes.fromhex(value.removeprefix("0x"))
    return bytes(value)


@dataclass(frozen=True)
class PostedAllocation:
    """A request's clearing result as FlexMarket recorded it (AllocationPosted)."""

    root: bytes
    accepted_w: int
    clearing_price: int
    availability_price: int = 0


@dataclass(frozen=True)
class FlexRequest:
    """A flexibility request: window, zone, target, price, token; buyer, budget, status, opening block."""

    request_id: int
    zone: int
    start: int
    end: int
    target_w: int
    price_per_kwh: int
    payment_token: str
    buyer: str = ""
    max_budget: int = 0
    status: RequestStatus = RequestStatus.OPEN
    opened_block: int | None = None  # the block of its RequestOpened event, when known
    holdout_bps: int = 0  # share of the committed sites held out as the control group (RequestRules)
    gate_closure: int | None = None  # no commitment is accepted from then on (RequestRules; None: the start)
    allocation: PostedAllocation | None = None  # the posted clearing result (AllocationPosted), if any
    availability_ceiling: int = 0  # most it pays per kW per hour of availability (RequestAvailability); 0: none

    @property
    def clears(self) -> bool:
        """Whether the market clears this request (its gate closes before its start; see the module)."""
        return self.gate_time < self.start

    @property
    def payable_budget(self) -> int:
        """The most settlement may pay: the escrow, lowered once allocated to what the allocation can
        earn (accepted W x window x (clearing price + availability price), rounded down, as
        FlexMarket.recordAllocation does)."""
        if self.allocation is None:
            return self.max_budget
        price = self.allocation.clearing_price + self.allocation.availability_price
        cap = self.allocation.accepted_w * (self.end - self.start) * price // 3_600_000
        return min(self.max_budget, cap)

    @property
    def availability_price(self) -> int:
        """The uniform availability price its allocation pays per kW per hour; 0 when it pays none
        (not cleared, not allocated, or opened without availability)."""
        return self.allocation.availability_price if self.clears and self.allocation is not None else 0

    def with_availability(self, args: Any) -> "FlexRequest":
        """This request with the availability ceiling a RequestAvailability event's `args` record."""
        return replace(self, availability_ceiling=int(args["availabilityPricePerKWh"]))

    def with_allocation(self, args: Any) -> "FlexRequest":
        """This request with the allocation an AllocationPosted event's `args` record."""
        return replace(self, allocation=PostedAllocation(as_bytes32(args["root"]), int(args["acceptedW"]),
                                                         int(args["clearingPrice"]),
                                                         int(args["availabilityPrice"])))

    @property
    def gate_time(self) -> int:
        """When commitments close: the gate closure, or the start for a market without a gate lead."""
        return self.start if self.gate_closure is None else self.gate_closure

    def with_rules(self, args: Any) -> "FlexRequest":
        """This request with the rules a RequestRules event's `args` snapshot."""
        return replace(self, holdout_bps=int(args["holdoutBps"]), gate_closure=int(args["gateClosure"]))

    @classmethod
    def from_event(cls, args: Any, block: int | None = None) -> "FlexRequest":
        """The open request a RequestOpened event's `args` describe (emitted in `block`)."""
        return cls(
            request_id=int(args["requestId"]), zone=int(args["zone"]), start=int(args["start"]),
            end=int(args["end"]), target_w=int(args["targetW"]), price_per_kwh=int(args["pricePerKWh"]),
            payment_token=to_checksum_address(args["paymentToken"]), buyer=to_checksum_address(args["buyer"]),
            max_budget=int(args["maxBudget"]), status=RequestStatus.OPEN, opened_block=block)
