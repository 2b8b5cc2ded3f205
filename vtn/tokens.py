"""Bearer tokens of the OAuth2 client-credentials grant, bound to one client, its role and scopes.

The rule: a token is 32 random bytes (URL-safe text), kept only as its SHA-256 in memory with the
client id, the role, the granted scopes and the expiry; a restart revokes every token (clients ask
again, as the grant expects). At most `MAX_TOKENS` live at once; the oldest go first.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from vtn.clients import Role

MAX_TOKENS = 10_000


@dataclass(frozen=True)
class Grant:
    """What a valid bearer token stands for."""

    client_id: str
    role: Role
    scopes: frozenset[str]
    expires_at: float


class TokenStore:
    """Issued tokens by digest."""

    def __init__(self, ttl_seconds: int, clock=time.time):
        self.ttl_seconds = ttl_seconds
        self._clock = clock
        self._grants: OrderedDict[str, Grant] = OrderedDict()
        self._lock = threading.Lock()

    def issue(self, client_id: str, role: Role, scopes: frozenset[str]) -> str:
        """A new token for `client_id` with `scopes`."""
        token = secrets.token_urlsafe(32)
        grant = Grant(client_id, role, scopes, self._clock() + self.ttl_seconds)
        with self._lock:
            self._grants[_digest(token)] = grant
            while len(self._grants) > MAX_TOKENS:
                self._grants.popitem(last=False)
        return token

    def grant(self, token: str) -> Grant | None:
        """The live grant of `token`, or None (unknown or expired)."""
        if not token or len(token) > 256:
            return None
        with self._lock:
            grant = self._grants.get(_digest(token))
            if grant is not None and grant.expires_at <= self._clock():
                del self._grants[_digest(token)]
                return None
        return grant


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
