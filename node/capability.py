"""The node's own view of its site's tested capability (proof of flexibility, protocol.capability).

The oracles cut each site's offers to its cap when they clear (the latest passed capability test's
testedW, else the network's probationary cap). A node caps itself the same way, so that what it
offers and what its day-ahead forecast promises are what the clearing can accept: it asks its oracles
`GET /v1/sites/{site}/capability` and takes the smallest `capW` any of them answers (honest oracles
agree; the smallest never offers more than one of them clears). No answer, or a network that runs no
tests (`capW` null), leaves the node uncapped: the oracles still cap at the gate. Answers are kept for
`ttl_seconds` (wall time), since records change only when a report is finalized.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger("negawatt.node.capability")


class SiteCapability:
    """The cap on the site's offers, from the oracles (see the module)."""

    def __init__(self, site: str, oracles: Callable[[], list[str]], fetch: Callable[[str], tuple[int, Any]],
                 ttl_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic):
        self.site = site
        self.oracles = oracles
        self.fetch = fetch
        self.ttl = ttl_seconds
        self.clock = clock
        self._known: tuple[float, int | None] | None = None

    def cap_w(self) -> int | None:
        """The most the site's offers may add up to in one request (W), or None: not capped."""
        now = self.clock()
        if self._known is not None and now - self._known[0] < self.ttl:
            return self._known[1]
        caps = []
        for url in self.oracles():
            status, body = self.fetch(f"{url.rstrip('/')}/v1/sites/{self.site}/capability")
            if status == 200 and isinstance(body, dict) and isinstance(body.get("capW"), int) \
                    and not isinstance(body.get("capW"), bool) and body["capW"] >= 0:
                caps.append(body["capW"])
        cap = min(caps) if caps else None
        if self._known is None or self._known[1] != cap:
            log.info("site %s: offers capped at %s", self.site, f"{cap} W (tested capability)" if cap is not None
                     else "nothing (no oracle names a cap)")
        self._known = (now, cap)
        return cap


def capped_total(parts: list[int], cap_w: int | None) -> list[int]:
    """`parts` (W, in the order they are taken) cut so that they add up to at most `cap_w`."""
    if cap_w is None:
        return list(parts)
    out, left = [], cap_w
    for watts in parts:
        take = max(0, min(watts, left))
        out.append(take)
        left -= take
    return out
