"""Per-client rate limiting: a token bucket per client address (protocol.rate_limit), as a pure ASGI
middleware (cheap enough for every request). Over the limit: 429 problem+json with Retry-After."""

from __future__ import annotations

import math
from typing import Any

from api.problems import PROBLEM_MEDIA_TYPE, Reason, problem_bytes
from protocol.rate_limit import TokenBuckets

MAX_CLIENTS = 100_000  # client addresses with a bucket at once


class RateLimitMiddleware:
    """ASGI middleware answering 429 when a client exceeds its bucket; `exempt` paths are not counted."""

    def __init__(self, app: Any, rate: float, burst: int, exempt: tuple[str, ...] = ()):
        self.app = app
        self.buckets = TokenBuckets(rate, burst, max_keys=MAX_CLIENTS)
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
