"""Splitting a request's verified portfolio reduction among its dispatched sites, and penalties.

The rule (integers, floor division, one pass in site order):

    verified_wh  = min(max(estimate, 0), sum of the dispatched sites' committed Wh)
    weight_i     = min(max(r_i, 0), committed_wh_i)        r_i = the site's own baseline - actual
    paid_wh_i    = min(committed_wh_i, verified_wh * weight_i // sum of weights)   (0 if no weight)

so a site that did not reduce (r_i <= 0) earns nothing, no site is paid beyond its commitment, and
the sites together are never paid more than the portfolio estimate says they delivered. A site whose
meter reads less than the sum of its own devices' meters (an impossible boundary reading) is flagged
`site_meter_below_devices` and gets no weight.

Under-delivery penalty, one-sided at 95 %: a site is penalised only when its own reduction is clearly
below the share of its commitment the program requires,

    r_i + 1.645 * sigma_i < penalty_below_bps * committed_wh_i / 10_000

with sigma_i = isqrt(mean of its squared placebo window errors), the site's own baseline noise. A
site with fewer than 2 placebo days is never penalised (its noise is unknown). A site that delivered
its commitment is then falsely penalised only when its baseline error is below -1.645 sigma, about
5 % of the time under normal errors; `python -m bench mv` measures the actual rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from protocol.units import BPS

PENALTY_Z_MILLI = 1_645
FLAG_SITE_BELOW_DEVICES = "site_meter_below_devices"


@dataclass(frozen=True)
class SiteClaim:
    """A dispatched site's commitment and its own measured reduction in one request (Wh)."""

    site: str
    committed_wh: int
    reduction_wh: int
    placebo_errors_wh: tuple[int, ...] = ()
    below_devices: bool = False


@dataclass(frozen=True)
class SitePay:
    """What one site is paid for (Wh) and whether it is penalised."""

    site: str
    committed_wh: int
    reduction_wh: int
    weight_wh: int
    paid_wh: int
    penalised: bool
    flags: tuple[str, ...]


def site_noise_wh(placebo_errors_wh: Sequence[int]) -> int | None:
    """The site's baseline noise over a window: isqrt of its mean squared placebo error (None < 2 days)."""
    if len(placebo_errors_wh) < 2:
        return None
    return math.isqrt(sum(e * e for e in placebo_errors_wh) // len(placebo_errors_wh))


def clearly_under(claim: SiteClaim, penalty_below_bps: int) -> bool:
    """Whether the site's reduction is below its required share even allowing for its noise."""
    sigma = site_noise_wh(claim.placebo_errors_wh)
    if sigma is None or claim.committed_wh <= 0:
        return False
    # r + z * sigma < below * committed / 10_000, in integers: 10_000 * (1000 r + z sigma) < 1000 * below * c
    return BPS * (1_000 * claim.reduction_wh + PENALTY_Z_MILLI * sigma) < 1_000 * penalty_below_bps * claim.committed_wh


def allocate(estimated_wh: int, claims: Sequence[SiteClaim], penalty_below_bps: int = 5_000) -> list[SitePay]:
    """Each dispatched site's paid Wh out of the verified portfolio reduction (see the module rule)."""
    ordered = sorted(claims, key=lambda c: c.site.lower())
    if len({c.site.lower() for c in ordered}) != len(ordered):
        raise ValueError("a site is claimed twice")
    for claim in ordered:
        if claim.committed_wh < 0:
            raise ValueError(f"site {claim.site}: negative commitment")
    verified = min(max(estimated_wh, 0), sum(c.committed_wh for c in ordered))
    weights = [0 if c.below_devices else min(max(c.reduction_wh, 0), c.committed_wh) for c in ordered]
    total = sum(weights)
    out = []
    for claim, weight in zip(ordered, weights):
        paid = min(claim.committed_wh, verified * weight // total) if total else 0
        flags = (FLAG_SITE_BELOW_DEVICES,) if claim.below_devices else ()
        out.append(SitePay(claim.site, claim.committed_wh, claim.reduction_wh, weight, paid,
                           clearly_under(claim, penalty_below_bps), flags))
    return out
