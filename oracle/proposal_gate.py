"""Who may make this oracle compute and sign an epoch: the gate in front of POST /v1/proposals.

Rule: only an oracle of the OracleHub's current set, signing a fresh proposal (protocol.proposals),
gets its proposal computed, and no client, no oracle and not all oracles together may ask faster
than their token buckets allow. The checks run cheapest first, so garbage costs almost nothing:

    1. the client address's bucket (before anything is parsed)          429 rate_limited
    2. the three credential headers present and well formed             401 unauthenticated
    3. issuedAt within [now - max_age, now + max_ahead]                 401 stale_proposal
    4. (the route: body size, media type, strict JSON)                  413 / 415 / 400
    5. the claimed proposer is in the cached oracle set                 403 not_an_oracle
    6. the signature recovers to the claimed proposer                   401 bad_signature
    7. the proposer's bucket, then the bucket shared by all oracles     429 rate_limited

The oracle set is read from the OracleHub (`oracles()`) at most every `oracle_set_max_age_seconds`,
and on a miss at most every `oracle_set_miss_seconds` (so a newly added oracle is heard quickly
while a non-member cannot make the oracle call the chain per request).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from protocol.rate_limit import TokenBuckets
from protocol.problems import Reason
from protocol.proposals import AUTH_SCHEME, ProposalCredentials, credentials_of, proposal_signer

log = logging.getLogger(__name__)


class ProposalGateSettings(BaseSettings):
    """Limits of the proposal route (NEGAWATT_ORACLE_PROPOSALS_* environment variables)."""

    model_config = SettingsConfigDict(env_prefix="NEGAWATT_ORACLE_PROPOSALS_", extra="ignore")

    max_age_seconds: int = Field(120, ge=1, le=3_600, description="how old a proposal's issuedAt may be")
    max_ahead_seconds: int = Field(30, ge=0, le=600, description="how far ahead of this oracle's clock")
    client_rate: float = Field(10.0, gt=0, description="requests per second per client address")
    client_burst: int = Field(20, ge=1)
    peer_rate: float = Field(1.0, gt=0, description="authenticated proposals per second per oracle")
    peer_burst: int = Field(10, ge=1)
    total_rate: float = Field(5.0, gt=0, description="authenticated proposals per second, all oracles")
    total_burst: int = Field(20, ge=1)
    max_body_bytes: int = Field(8_192, ge=1_024, description="a proposal of 64 ids is about 1.5 kB")
    oracle_set_max_age_seconds: float = Field(10.0, gt=0)
    oracle_set_miss_seconds: float = Field(2.0, gt=0)


class ProposalRefused(Exception):
    """A proposal the gate turns away before any work: HTTP `status`, reason `code`, extra `headers`."""

    def __init__(self, status: int, code: Reason, title: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.headers = headers or {}


class ChainSetUnavailable(Exception):
    """The oracle set could not be read and none is cached yet."""


class OracleSet:
    """The OracleHub's oracle addresses, cached; `read` returns them from the chain."""

    def __init__(self, read: Callable[[], Iterable[str]], max_age_seconds: float = 10.0, miss_seconds: float = 2.0,
                 clock: Callable[[], float] = time.monotonic):
        self._read = read
        self.max_age = max_age_seconds
        self.miss_seconds = miss_seconds
        self._clock = clock
        self._members: frozenset[str] | None = None
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    @classmethod
    def of_hub(cls, hub: Any, **kwargs: Any) -> "OracleSet":
        """The set of a web3 OracleHub contract object."""
        return cls(lambda: hub.functions.oracles().call()[0], **kwargs)

    def needs_read(self, address: str) -> bool:
        """Whether answering for `address` needs a chain read first (cache too old, or a miss that may be new)."""
        age = self._clock() - self._read_at
        if self._members is None or age >= self.max_age:
            return True
        return address not in self._members and age >= self.miss_seconds

    def refresh(self) -> frozenset[str]:
        """Read the set from the chain (one reader at a time); on an RPC error keep the cached set."""
        with self._lock:
            try:
                self._members = frozenset(str(a) for a in self._read())
            except Exception as error:  # an RPC hiccup must not lock the peers out
                if self._members is None:
                    raise ChainSetUnavailable(str(error)) from None
                log.warning("oracle set not refreshed (%s); keeping %d members", error, len(self._members))
            self._read_at = self._clock()
            return self._members

    def __contains__(self, address: object) -> bool:
        return self._members is not None and address in self._members


def _retry_after(wait: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(wait)))}


class ProposalGate:
    """The checks of POST /v1/proposals before any computation (see the module docstring)."""

    def __init__(self, chain_id: int, hub: str, oracle_set: OracleSet, clock: Callable[[], float],
                 settings: ProposalGateSettings | None = None, monotonic: Callable[[], float] = time.monotonic):
        self.chain_id = chain_id
        self.hub = hub
        self.oracle_set = oracle_set
        self.clock = clock
        self.settings = settings or ProposalGateSettings()
        s = self.settings
        self._monotonic = monotonic
        self._clients = TokenBuckets(s.client_rate, s.client_burst)
        self._peers = TokenBuckets(s.peer_rate, s.peer_burst, max_keys=1_000)
        self._all = TokenBuckets(s.total_rate, s.total_burst, max_keys=1)

    def admit_client(self, client: str) -> None:
        """Step 1: the client address's bucket (peers are not behind proxies: the socket's address)."""
        wait = self._clients.take(client, self._monotonic())
        if wait:
            raise ProposalRefused(429, Reason.RATE_LIMITED, "Too many requests",
                                  f"more than {self.settings.client_rate:g} proposals per second from this address",
                                  _retry_after(wait))

    def credentials(self, headers: Mapping[str, str]) -> ProposalCredentials:
        """Steps 2 and 3: the credentials' shape and freshness (no cryptography yet)."""
        found = credentials_of(headers)
        if found is None:
            raise ProposalRefused(401, Reason.UNAUTHENTICATED, "Proposals must be signed by an oracle",
                                  "send X-Negawatt-Oracle, X-Negawatt-Issued-At and X-Negawatt-Signature "
                                  "(protocol.proposals)", {"WWW-Authenticate": f'{AUTH_SCHEME} realm="proposals"'})
        now = int(self.clock())
        s = self.settings
        if not now - s.max_age_seconds <= found.issued_at <= now + s.max_ahead_seconds:
            raise ProposalRefused(401, Reason.STALE_PROPOSAL, "The proposal is not fresh",
                                  f"issued at {found.issued_at}; this oracle takes {now - s.max_age_seconds}.."
                                  f"{now + s.max_ahead_seconds}",
                                  {"WWW-Authenticate": f'{AUTH_SCHEME} realm="proposals", error="stale"'})
        return found

    def authenticate(self, credentials: ProposalCredentials, epoch: int, previous_root: str,
                     request_ids: Sequence[int]) -> str:
        """Steps 5 to 7: membership, signature, the oracle's buckets; returns the proposing oracle."""
        proposer = credentials.proposer
        if proposer not in self.oracle_set:
            raise ProposalRefused(403, Reason.NOT_AN_ORACLE, "Only the OracleHub's oracles may propose",
                                  f"{proposer} is not in the oracle set")
        if proposal_signer(credentials, self.chain_id, self.hub, epoch, previous_root, request_ids) != proposer:
            raise ProposalRefused(401, Reason.BAD_SIGNATURE, "The signature is not the proposer's",
                                  "the signature does not recover to X-Negawatt-Oracle over this proposal",
                                  {"WWW-Authenticate": f'{AUTH_SCHEME} realm="proposals", error="bad_signature"'})
        now = self._monotonic()
        wait = self._peers.take(proposer, now)
        if wait:
            raise ProposalRefused(429, Reason.RATE_LIMITED, "Too many proposals from this oracle",
                                  f"more than {self.settings.peer_rate:g} proposals per second", _retry_after(wait))
        wait = self._all.take("all", now)
        if wait:
            raise ProposalRefused(429, Reason.RATE_LIMITED, "Too many proposals",
                                  f"more than {self.settings.total_rate:g} proposals per second from all oracles",
                                  _retry_after(wait))
        return proposer
