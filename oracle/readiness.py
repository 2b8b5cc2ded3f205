"""Is this oracle ready to take traffic? Readiness, as distinct from liveness (GET /v1/health).

Ready means all of:
    database   a query on the oracle's tables answers
    chain      the JSON-RPC endpoint answers eth_blockNumber within `rpc_timeout` seconds
    follower   the chain view has synced, and head - followed block <= confirmations + max_lag_blocks
    keys       the signing key is loaded (only for an oracle that signs; the bare ingest has none)

`Readiness.check()` runs every check (none short-circuits the others, so the answer names every
problem at once) and returns a `ReadinessReport`; oracle.ops_api serves it as 200 or 503.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import Engine

DEFAULT_MAX_LAG_BLOCKS = 10
DEFAULT_RPC_TIMEOUT = 3.0


@dataclass(frozen=True)
class Check:
    """One readiness condition: whether it holds, why not, and what was measured."""

    ok: bool
    detail: str = ""
    values: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The check as it appears in the /v1/ready body."""
        return {"ok": self.ok, **({"detail": self.detail} if self.detail else {}), **self.values}


@dataclass(frozen=True)
class ReadinessReport:
    """Every check by name; ready when all hold."""

    checks: dict[str, Check]

    @property
    def ready(self) -> bool:
        """Whether every check holds."""
        return all(check.ok for check in self.checks.values())

    @property
    def not_ready(self) -> list[str]:
        """The names of the checks that do not hold, in check order."""
        return [name for name, check in self.checks.items() if not check.ok]

    def summary(self) -> str:
        """One line naming each failed check and why ("chain: ...; follower: ...")."""
        return "; ".join(f"{name}: {self.checks[name].detail}" for name in self.not_ready)


def rpc_head(rpc_url: str, timeout: float = DEFAULT_RPC_TIMEOUT) -> int:
    """The chain's head block number from `rpc_url` (eth_blockNumber with a short timeout).

    A direct JSON-RPC call rather than the service's web3 connection: a probe must give up in
    seconds, while the service's calls may wait much longer. Raises httpx.HTTPError or ValueError."""
    response = httpx.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []},
                          timeout=timeout)
    response.raise_for_status()
    body = response.json()
    if not isinstance(body, dict) or not isinstance(body.get("result"), str):
        raise ValueError(f"unexpected eth_blockNumber answer: {str(body)[:200]}")
    return int(body["result"], 16)


def rpc_url_of(web3: Any) -> str | None:
    """The HTTP endpoint of a web3 connection, if it has one."""
    return getattr(getattr(web3, "provider", None), "endpoint_uri", None)


class Readiness:
    """The readiness checks of one oracle (or bare ingest) service."""

    def __init__(self, engine: Engine | None, rpc_url: str | None, chain_view: Any, *, confirmations: int = 0,
                 max_lag_blocks: int = DEFAULT_MAX_LAG_BLOCKS, rpc_timeout: float = DEFAULT_RPC_TIMEOUT,
                 require_key: bool = False, key_address: str | None = None):
        self.engine = engine
        self.rpc_url = rpc_url
        self.chain_view = chain_view
        self.confirmations = confirmations
        self.max_lag_blocks = max_lag_blocks
        self.rpc_timeout = rpc_timeout
        self.require_key = require_key
        self.key_address = key_address

    def head(self) -> int | None:
        """The chain's head, or None when the RPC does not answer (also used by the metrics)."""
        if self.rpc_url is None:
            return None
        try:
            return rpc_head(self.rpc_url, self.rpc_timeout)
        except (httpx.HTTPError, ValueError):
            return None

    def followed(self) -> int | None:
        """The last block the chain view applied (None before its first sync)."""
        return getattr(self.chain_view, "cursor", None)

    def chain(self) -> tuple[int | None, int | None]:
        """(head or None, followed block or None), for the chain-lag metrics."""
        return self.head(), self.followed()

    def check(self) -> ReadinessReport:
        """Run every check now."""
        checks = {"database": self._database()}
        head = None
        if self.rpc_url is None:
            checks["chain"] = Check(False, "no HTTP JSON-RPC endpoint is configured")
        else:
            try:
                head = rpc_head(self.rpc_url, self.rpc_timeout)
                checks["chain"] = Check(True, values={"head": head})
            except (httpx.HTTPError, ValueError) as error:
                checks["chain"] = Check(False, f"the RPC does not answer: {str(error)[:200] or type(error).__name__}")
        checks["follower"] = self._follower(head)
        if self.require_key:
            checks["keys"] = (Check(True, values={"address": self.key_address}) if self.key_address
                              else Check(False, "no signing key is loaded"))
        return ReadinessReport(checks)

    def _database(self) -> Check:
        if self.engine is None:
            return Check(False, "no database is configured")
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT count(*) FROM key_values")).scalar()
            return Check(True)
        except Exception as error:  # any driver error: the answer is "not ready", with the reason
            return Check(False, f"the database does not answer: {str(getattr(error, 'orig', error))[:200]}")

    def _follower(self, head: int | None) -> Check:
        followed = self.followed()
        allowed = self.confirmations + self.max_lag_blocks
        values = {"followed": followed, "allowedLag": allowed}
        if followed is None:
            return Check(False, "the chain view has not synced yet", values)
        if head is None:
            return Check(False, "the chain head is unknown (the RPC does not answer)", values)
        lag = max(0, head - followed)
        values["lag"] = lag
        if lag > allowed:
            return Check(False, f"block {followed} is {lag} blocks behind head {head} (at most {allowed})", values)
        return Check(True, values=values)
