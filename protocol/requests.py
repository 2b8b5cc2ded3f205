"""A FlexMarket request as every role reads it from the chain: one type for the node and the oracle.

`FlexRequest` holds what FlexMarket's RequestOpened event says (power in W, amounts in base
units) and the request's life-cycle status (`protocol.statuses.RequestStatus`, the contract's
enum). The node only reads the first seven fields, so they come first; `from_event` builds one
from a decoded RequestOpened event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import to_checksum_address

from protocol.statuses import RequestStatus


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

    @classmethod
    def from_event(cls, args: Any, block: int | None = None) -> "FlexRequest":
        """The open request a RequestOpened event's `args` describe (emitted in `block`)."""
        return cls(
            request_id=int(args["requestId"]), zone=int(args["zone"]), start=int(args["start"]),
            end=int(args["end"]), target_w=int(args["targetW"]), price_per_kwh=int(args["pricePerKWh"]),
            payment_token=to_checksum_address(args["paymentToken"]), buyer=to_checksum_address(args["buyer"]),
            max_budget=int(args["maxBudget"]), status=RequestStatus.OPEN, opened_block=block)
