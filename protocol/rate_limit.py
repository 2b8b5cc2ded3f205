"""Token buckets: `rate` requests per second per key, bursts of at most `burst`.

Rule: taking a token either succeeds (0.0) or says how long until one is available, never blocks.
The API keeps one bucket per client address (api.ratelimit); the oracle's proposal route keeps one
set per client address, one per proposing oracle and one shared by all oracles
(oracle.proposal_gate). The table of keys is bounded: idle full buckets are dropped first, and if
every key is busy the table starts over (forgetting debts is the safe side for honest clients; a
flood from many addresses is still cut by a shared bucket or the next request's).
"""

from __future__ import annotations

import threading
import time


class TokenBuckets:
    """One token bucket per key, `rate` tokens per second, at most `burst` stored."""

    def __init__(self, rate: float, burst: int, max_keys: int = 10_000):
        if rate <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate > 0 and burst >= 1")
        self.rate = float(rate)
        self.burst = int(burst)
        self.max_keys = max_keys
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """Take one token for `key`: 0.0 if it was there, else the seconds until one will be."""
        now = time.monotonic() if now is None else now
        with self._lock:
            stored, seen = self._buckets.get(key, (float(self.burst), now))
            if key not in self._buckets and len(self._buckets) >= self.max_keys:
                self._evict(now)
            tokens = min(float(self.burst), stored + max(0.0, now - seen) * self.rate)
            if tokens >= 1.0:
                self._buckets[key] = (tokens - 1.0, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1.0 - tokens) / self.rate

    def _evict(self, now: float) -> None:
        refill = self.burst / self.rate
        for key in [k for k, (_, seen) in self._buckets.items() if now - seen >= refill]:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:
            self._buckets.clear()
