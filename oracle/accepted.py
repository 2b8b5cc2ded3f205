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
    at the uniform clearing price. Each device's pay is clipped to its acceptance, so the total
    never exceeds what the allocation can earn (FlexRequest.payable_budget, the escrow FlexMarket
    lowered it to); the report's escrow and refund stay the deposit's, as the chain refunds the
    deposit less the payout. Other commitments (not accepted, priced above the clearing price)
    take no part.

Overlapping requests (revenue stacking): a site meter measures the whole premises, so a site's
reduction in a window can be verified, and paid, for one request only. The priority is the order
of clearing: the request whose gate closed first (then the lower id) keeps the site; in any later
request whose window overlaps it, the site is dropped, accepted or control. Nodes and oracles apply
the same rule before (a node offers a site to one of overlapping requests; the clearing leaves out
sites already accepted) and settlement applies it again, so no Wh is paid twice even if an
allocation broke it.
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


def overlaps(a: RequestInfo, b: RequestInfo) -> bool:
    """Whether two requests' windows share any time."""
    return a.start < b.end and b.start < a.end


def clears_before(a: RequestInfo, b: RequestInfo) -> bool:
    """Whether `a` has priority over `b` for a site they share: its gate closed first, or at the same
    time with a lower id."""
    return (a.gate_time, a.request_id) < (b.gate_time, b.request_id)


def taken_sites(request: RequestInfo, others: Iterable[tuple[RequestInfo, Allocation]]) -> set[str]:
    """Sites (lowercase) accepted by a request that overlaps `request` and clears before it."""
    taken: set[str] = set()
    for other, allocation in others:
        if other.request_id != request.request_id and overlaps(other, request) and clears_before(other, request):
            taken.update(a.site.lower() for a in allocation.accepted)
    return taken


def settled_commitments(request: RequestInfo, commitments: Iterable[Any], allocation: Allocation | None,
                        site_of: Callable[[str], str], taken: set[str] = frozenset()) -> tuple[RequestInfo, list[Any]]:
    """(request as settled, the commitments it settles with) by the module's rule. `allocation` is the
    verified allocation whose root is the one on chain (None when none was posted); `site_of` gives a
    device's site (itself without one). Raises AllocationUnknown for a posted allocation this oracle
    could not verify. `taken`: sites an overlapping request with priority keeps (see the module)."""
    commitments = list(commitments)
    if not request.clears:
        return request, commitments
    if request.allocation is None:
        return request, []
    if allocation is None or allocation.root() != request.allocation.root:
        raise AllocationUnknown(f"request {request.request_id}: no verified allocation for the on-chain root "
                                f"0x{request.allocation.root.hex()}")
    priced = replace(request, price_per_kwh=allocation.clearing_price)
    accepted = {a.device.lower(): a.watts for a in allocation.accepted}
    control = {site.lower() for site in allocation.control_sites}
    settled = []
    for commitment in commitments:
        device = commitment.device.lower()
        if site_of(commitment.device).lower() in taken:
            continue
        if device in accepted:
            settled.append(SettledCommitment(commitment.device, accepted[device]))
        elif site_of(commitment.device).lower() in control:
            settled.append(SettledCommitment(commitment.device, commitment.watts))
    return priced, settled
