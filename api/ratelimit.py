"""Per-client rate limiting: a token bucket per client address, as a pure ASGI middleware (cheap
enough for every request). Over the limit: 429 problem+json with Retry-After."""

from __future__ import annotations

import math
import time
from typing import Any

from api.problems import PROBLEM_MEDIA_TYPE, Reason, problem_bytes


class TokenBuckets:
    """`rate` tokens per second, at most `burst` stored, per key. Old idle buckets are dropped."""

    def __init__(self, rate: float, burst: int, max_clients: int = 100_000):
        self.rate = rate
        self.burst = burst
        self.max_clients = max_clients
        self._buckets: dict[str, list[float]] = {}

    def take(self, key: str, now: float | None = None) -> float:
        """Take one token for `key`: 0.0 if allowed, else the seconds until one is available."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_clients:
                self._evict(now)
            bucket = self._buckets[key] = [float(self.burst), now]
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate

    def _evict(self, now: float) -> None:
        full = self.burst / self.rate
        for key in [k for k, (_, seen) in self._buckets.items() if now - seen > full]:
            del self._buckets[key]
        if len(self._buckets) >= self.max_clients:
            self._buckets.clear()


class RateLimitMiddleware:
    """ASGI middleware answering 429 when a client exceeds its bucket; `exempt` paths are not counted."""

    def __init__(self, app: Any, rate: float, burst: int, exempt: tuple[str, ...] = ()):
        self.app = app
        self.buckets = TokenBuckets(rate, burst)
        self.exempt = exempt

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        wait = self.buckets.take(client[0] if client else "unknown")
        if wait == 0.0:
            await self.app(scope, receive, send)
            return
        retry = max(1, math.ceil(wait))
        body = problem_bytes(429, Reason.RATE_LIMITED, "Too many requests",
                             f"more than {self.buckets.rate:g} requests per second from this client; retry in {retry} s")
        await send({"type": "http.response.start", "status": 429,
                    "headers": [(b"content-type", PROBLEM_MEDIA_TYPE.encode()), (b"retry-after", str(retry).encode()),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
