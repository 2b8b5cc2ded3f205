"""Sign-In with Ethereum (EIP-4361, the `siwe` library) sessions for owners' off-chain writes.

A client asks for a nonce, has the wallet sign an EIP-4361 message naming this API's domain, the
deployment's chain id and the nonce, and exchanges it for a bearer token. Nonces are single-use
and expire; sessions are stored (hashed) in the database so they survive a restart.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import warnings
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine

from api.models import api_metadata
from api.problems import ApiProblem, Reason

with warnings.catch_warnings():  # the abnf grammar loader warns about siwe's redefinitions of core rules
    warnings.simplefilter("ignore")
    from siwe import SiweMessage, VerificationError
    from siwe.siwe import DomainMismatch, ExpiredMessage, InvalidSignature, NonceMismatch, NotYetValidMessage

NONCES = api_metadata.tables["siwe_nonces"]
SESSIONS = api_metadata.tables["sessions"]


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    """A signed-in address."""

    token: str
    address: str
    expires_at: int


class SiweAuth:
    """Issues nonces, verifies signed messages into sessions, resolves bearer tokens."""

    def __init__(self, engine: Engine, chain_id: int, domains: list[str], nonce_seconds: int = 600,
                 session_seconds: int = 86_400):
        self.engine = engine
        self.chain_id = chain_id
        self.domains = domains
        self.nonce_seconds = nonce_seconds
        self.session_seconds = session_seconds

    def new_nonce(self) -> tuple[str, int]:
        """A fresh single-use nonce and its expiry (unix seconds)."""
        nonce = secrets.token_hex(16)
        expires = int(time.time()) + self.nonce_seconds
        with self.engine.begin() as connection:
            connection.execute(delete(NONCES).where(NONCES.c.expires_at < int(time.time())))
            connection.execute(insert(NONCES).values(nonce=nonce, expires_at=expires, used=False))
        return nonce, expires

    def login(self, message: str, signature: str, host: str | None) -> Session:
        """Verify a signed EIP-4361 message and open a session; raises ApiProblem (400/401) saying why."""
        try:
            parsed = SiweMessage.from_message(message)
        except Exception as error:  # noqa: BLE001  (the ABNF parser raises assorted errors on malformed text)
            raise ApiProblem(400, Reason.INVALID_SIWE_MESSAGE, "Not an EIP-4361 message", str(error)[:300]) from None
        allowed = self.domains or ([host] if host else [])
        if parsed.domain not in allowed:
            raise ApiProblem(401, Reason.SIWE_DOMAIN_MISMATCH, "Wrong domain",
                             f"the message is for {parsed.domain!r}; this API accepts {', '.join(allowed) or 'none'}")
        if parsed.chain_id != self.chain_id:
            raise ApiProblem(401, Reason.SIWE_CHAIN_MISMATCH, "Wrong chain",
                             f"the message is for chain {parsed.chain_id}; this API serves chain {self.chain_id}")
        try:
            parsed.verify(signature, domain=parsed.domain, nonce=parsed.nonce)
        except ExpiredMessage:
            raise ApiProblem(401, Reason.SIWE_EXPIRED, "Message expired", "the message's expiration time has passed") from None
        except NotYetValidMessage:
            raise ApiProblem(401, Reason.SIWE_NOT_YET_VALID, "Message not yet valid", "its not-before time is ahead") from None
        except (InvalidSignature, DomainMismatch, NonceMismatch, VerificationError):
            raise ApiProblem(401, Reason.SIWE_BAD_SIGNATURE, "Invalid signature",
                             f"the signature is not {parsed.address}'s signature of this message") from None
        now = int(time.time())
        with self.engine.begin() as connection:
            used = connection.execute(update(NONCES).where(NONCES.c.nonce == parsed.nonce, NONCES.c.used.is_(False),
                                                           NONCES.c.expires_at >= now).values(used=True)).rowcount
            if used != 1:
                raise ApiProblem(401, Reason.SIWE_BAD_NONCE, "Unknown nonce",
                                 "the nonce was not issued here, has expired or was already used")
            token = secrets.token_urlsafe(32)
            expires = now + self.session_seconds
            connection.execute(insert(SESSIONS).values(token_hash=_hash(token), address=parsed.address,
                                                       expires_at=expires, created_at=now))
        return Session(token, parsed.address, expires)

    def address_of(self, token: str) -> str | None:
        """The address a live session token belongs to, or None."""
        with self.engine.connect() as connection:
            row = connection.execute(select(SESSIONS.c.address, SESSIONS.c.expires_at)
                                     .where(SESSIONS.c.token_hash == _hash(token))).first()
        if row is None or row.expires_at < int(time.time()):
            return None
        return row.address

    def logout(self, token: str) -> bool:
        """End a session; False if there was none."""
        with self.engine.begin() as connection:
            return connection.execute(delete(SESSIONS).where(SESSIONS.c.token_hash == _hash(token))).rowcount > 0
