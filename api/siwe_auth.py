"""Sign-In with Ethereum (EIP-4361, the `siwe` library) sessions for owners' off-chain writes.

A client asks for a nonce, has the wallet sign an EIP-4361 message naming one of this API's
configured domains (never whatever the request's Host header says), the deployment's chain id and
the nonce, and exchanges it for a bearer token. Nonces are single-use and expire; sessions are
stored (hashed) in the database so they survive a restart.

A login is checked cheapest first, and every refusal says what was wrong without repeating the
input: the message's bounded EIP-4361 shape (api.siwe_message, linear time), its domain and chain,
then the siwe library's parse (its regular-expression parser: the ABNF one is super-linear even on
bounded input) and the canonical form, then the signature (a malformed or unrecoverable one is a
401, never a 500), then the nonce.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
import warnings
from dataclasses import dataclass

from eth_keys.exceptions import BadSignature
from eth_utils import ValidationError as EthValidationError
from pydantic import ValidationError
from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine

from api.models import api_metadata
from api.problems import ApiProblem, Reason
from api.siwe_message import MessageShapeError, check_message

with warnings.catch_warnings():  # the abnf grammar loader warns about siwe's redefinitions of core rules
    warnings.simplefilter("ignore")
    from siwe import SiweMessage, VerificationError
    from siwe.siwe import DomainMismatch, ExpiredMessage, InvalidSignature, NonceMismatch, NotYetValidMessage

NONCES = api_metadata.tables["siwe_nonces"]
SESSIONS = api_metadata.tables["sessions"]
_SIGNATURE = re.compile(r"0x[0-9a-fA-F]{130}")
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _shown(value: str, limit: int = 80) -> str:
    """`value` quoted for an error detail, cut to `limit` characters."""
    return repr(value[:limit]) + ("..." if len(value) > limit else "")


def signature_problem(signature: str) -> str | None:
    """Why `signature` cannot be an EIP-191 secp256k1 signature (65 bytes r, s, v), or None."""
    if not _SIGNATURE.fullmatch(signature):
        return "the signature must be 0x + 130 hex digits (65 bytes: r, s, v)"
    raw = bytes.fromhex(signature[2:])
    r, s, v = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:64], "big"), raw[64]
    if v not in (0, 1, 27, 28):
        return f"the signature's v byte is {v}; it must be 27 or 28 (or 0 or 1)"
    if not (0 < r < _SECP256K1_N and 0 < s < _SECP256K1_N):
        return "the signature's r or s is zero or not below the secp256k1 group order"
    return None


@dataclass(frozen=True)
class Session:
    """A signed-in address."""

    token: str
    address: str
    expires_at: int


class SiweAuth:
    """Issues nonces, verifies signed messages into sessions, resolves bearer tokens.

    `domains` are the EIP-4361 domains (URI authorities, `host[:port]`) a message may name: this
    API's public address, from configuration. There is no fallback to the request's Host header,
    which the client controls."""

    def __init__(self, engine: Engine, chain_id: int, domains: list[str], nonce_seconds: int = 600,
                 session_seconds: int = 86_400):
        if not domains:
            raise ValueError("SIWE needs at least one allowed domain (this API's public host[:port])")
        self.engine = engine
        self.chain_id = chain_id
        self.domains = list(domains)
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

    def _parse(self, message: str) -> SiweMessage:
        """The message, shape-checked, domain- and chain-checked, then parsed by siwe (400/401 problems)."""
        try:
            shape = check_message(message)
        except MessageShapeError as error:
            raise ApiProblem(400, Reason.INVALID_SIWE_MESSAGE, "Not an EIP-4361 message", str(error)) from None
        if shape.domain not in self.domains:
            raise ApiProblem(401, Reason.SIWE_DOMAIN_MISMATCH, "Wrong domain",
                             f"the message is for {_shown(shape.domain)}; this API accepts only "
                             f"{', '.join(self.domains)}")
        if shape.chain_id != self.chain_id:
            raise ApiProblem(401, Reason.SIWE_CHAIN_MISMATCH, "Wrong chain",
                             f"the message is for chain {shape.chain_id}; this API serves chain {self.chain_id}")
        try:
            parsed = SiweMessage.from_message(message, abnf=False)
        except ValidationError as error:
            fields = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
                               for e in error.errors(include_url=False, include_input=False)[:3])
            raise ApiProblem(400, Reason.INVALID_SIWE_MESSAGE, "Not an EIP-4361 message", fields) from None
        except ValueError:
            raise ApiProblem(400, Reason.INVALID_SIWE_MESSAGE, "Not an EIP-4361 message",
                             "the siwe parser did not recognise the message") from None
        if parsed.prepare_message() != message or (parsed.domain, parsed.nonce) != (shape.domain, shape.nonce):
            raise ApiProblem(400, Reason.INVALID_SIWE_MESSAGE, "Not an EIP-4361 message",
                             "the message is not in its canonical EIP-4361 form (as siwe's prepare_message "
                             "writes it), which is the text a wallet signs")
        return parsed

    def login(self, message: str, signature: str) -> Session:
        """Verify a signed EIP-4361 message and open a session; raises ApiProblem (400/401) saying why."""
        parsed = self._parse(message)
        malformed = signature_problem(signature)
        if malformed is not None:
            status = 400 if not _SIGNATURE.fullmatch(signature) else 401
            raise ApiProblem(status, Reason.SIWE_BAD_SIGNATURE if status == 401 else Reason.INVALID_PARAMETER,
                             "Invalid signature", malformed)
        try:
            parsed.verify(signature, domain=parsed.domain, nonce=parsed.nonce)
        except ExpiredMessage:
            raise ApiProblem(401, Reason.SIWE_EXPIRED, "Message expired",
                             f"the message's expiration time {parsed.expiration_time} has passed") from None
        except NotYetValidMessage:
            raise ApiProblem(401, Reason.SIWE_NOT_YET_VALID, "Message not yet valid",
                             f"the message's not-before time {parsed.not_before} is ahead") from None
        except (BadSignature, EthValidationError):
            raise ApiProblem(401, Reason.SIWE_BAD_SIGNATURE, "Invalid signature",
                             "the signature does not recover to any address") from None
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
