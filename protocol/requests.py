"""A FlexMarket request as every role reads it from the chain: one type for the node and the oracle.

`FlexRequest` holds what FlexMarket's RequestOpened event says (power in W, amounts in base
units) and the request's life-cycle status (`protocol.statuses.RequestStatus`, the contract's
enum). The node only reads the first seven fields, so they come first; `from_event` builds one
from a decoded RequestOpened event, and `with_rules` adds what the RequestRules event emitted right
after it says: the share of committed sites held out and the gate closure (protocol.holdout).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
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
    holdout_bps: int = 0  # share of the committed sites held out as the control group (RequestRules)
    gate_closure: int | None = None  # no commitment is accepted from then on (RequestRules; None: the start)

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
