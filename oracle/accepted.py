"""What a cleared request settles with: its allocation's accepted devices and its control group.

The rule (issue 14), applied before the settlement rules of oracle.settlement / site_settlement:
  - a request the market does not clear (its gate closes at its start) settles every commitment at
    the request's price, as a fixed-price call;
  - a cleared request with no allocation on chain settles nothing: no node curtailed (a node
    curtails only what an on-chain allocation accepts), so all of its escrow is refunded;
  - a cleared request with an allocation settles
      the accepted devices, each at its accepted watts (the sum of its accepted tranches), and
      the devices of its control sites (held out, with an offer at or below the clearing price),
      at their offered watts — they are the comparison group of the portfolio estimate and are
      never paid (the holdout draw of oracle.site_settlement puts exactly them in the control group);
    at the uniform clearing price, within the escrow FlexMarket lowered to what the allocation can
    earn (FlexRequest.payable_budget). Other commitments (not accepted, priced above the clearing
    price) take no part.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from collections.abc import Callable, Iterable
from typing import Any

from oracle.chain_view import RequestInfo
from protocol.clearing import Allocation


@dataclass(frozen=True)
class SettledCommitment:
    """A device and the watts it settles with (its acceptance, or its offer as a control)."""

    device: str
    watts: int


class AllocationUnknown(Exception):
    """The request's on-chain allocation root does not match any allocation this oracle can verify."""


def settled_commitments(request: RequestInfo, commitments: Iterable[Any], allocation: Allocation | None,
                        site_of: Callable[[str], str]) -> tuple[RequestInfo, list[Any]]:
    """(request as settled, the commitments it settles with) by the module's rule. `allocation` is the
    verified allocation whose root is the one on chain (None when none was posted); `site_of` gives a
    device's site (itself without one). Raises AllocationUnknown for a posted allocation this oracle
    could not verify."""
    commitments = list(commitments)
    if not request.clears:
        return request, commitments
    if request.allocation is None:
        return request, []
    if allocation is None or allocation.root() != request.allocation.root:
        raise AllocationUnknown(f"request {request.request_id}: no verified allocation for the on-chain root "
                                f"0x{request.allocation.root.hex()}")
    priced = replace(request, price_per_kwh=allocation.clearing_price, max_budget=request.payable_budget)
    accepted = {a.device.lower(): a.watts for a in allocation.accepted}
    control = {site.lower() for site in allocation.control_sites}
    settled = []
    for commitment in commitments:
        device = commitment.device.lower()
        if device in accepted:
            settled.append(SettledCommitment(commitment.device, accepted[device]))
        elif site_of(commitment.device).lower() in control:
            settled.append(SettledCommitment(commitment.device, commitment.watts))
    return priced, settled
