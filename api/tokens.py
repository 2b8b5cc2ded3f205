"""The tokens the API states amounts in: each one's address, symbol, name, decimals and role.

Rules:
- Every amount the API serves, in REST and in the SSE stream, is a decimal string of the token's
  base units (api.amounts); `GET /v1/tokens` says how many decimals each token has, so a client
  shows `10400000000000000000` as `10.4 NEGA` without asking the chain.
- A token's metadata is read from the chain once (ERC-20 `symbol()`, `name()`, `decimals()`, each an
  `eth_call` capped at CALL_GAS) and stored in `tokens`; it is never read again, because a deployed
  token's metadata is fixed. A reorg or a mirror reset keeps it.
- The stake token (NegawattToken) and the manifest's stablecoin (when deployed) are looked up first;
  a payment token first seen in a RequestOpened is looked up after the range that brought it. A buyer
  may name any ERC-20, so the lookups are bounded: at most LOOKUPS_PER_STEP per indexer poll and
  MAX_TOKENS in all.
- A token that answers nothing usable (no code, a revert, a symbol that is not short printable
  text, decimals over MAX_DECIMALS) is stored with null symbol/decimals and an `error`, and not
  asked again.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from eth_utils import function_signature_to_4byte_selector, to_checksum_address
from sqlalchemy import insert, select, update
from sqlalchemy.engine import Engine
from web3.exceptions import Web3Exception

from api.models import api_metadata

log = logging.getLogger(__name__)

TOKENS = api_metadata.tables["tokens"]
REQUESTS = api_metadata.tables["requests"]

CALL_GAS = 100_000  # an honest ERC-20 view answers in a few thousand gas
LOOKUPS_PER_STEP = 8
MAX_TOKENS = 1_000
MAX_DECIMALS = 77  # 10**77 still fits a uint256
MAX_SYMBOL = 32
MAX_NAME = 64

_SELECTORS = {name: function_signature_to_4byte_selector(f"{name}()") for name in ("symbol", "name", "decimals")}


class TokenLookupError(ValueError):
    """A token answered something the API cannot state amounts with (the message says what)."""


def _text(codec: Any, raw: bytes, limit: int, what: str) -> str:
    """An ERC-20 string answer (ABI `string`, or the old `bytes32` style), checked to be short printable text."""
    value: str | None = None
    try:
        (value,) = codec.decode(["string"], raw)
    except Exception:  # noqa: BLE001  (not an ABI string: maybe a bytes32 symbol, as older tokens answer)
        if len(raw) == 32:
            value = raw.rstrip(b"\0").decode("utf-8", errors="replace")
    if value is None:
        raise TokenLookupError(f"{what}() did not answer a string")
    if not value or len(value) > limit or not value.isprintable():
        raise TokenLookupError(f"{what}() answered {value[:limit]!r}, not 1..{limit} printable characters")
    return value


class TokenBook:
    """Looks up and stores token metadata for one deployment (see the module docstring)."""

    def __init__(self, engine: Engine, web3: Any, stake_token: str, known_payment: tuple[str, ...] = ()):
        self.engine = engine
        self.web3 = web3
        self.stake_token = to_checksum_address(stake_token)
        self.known_payment = tuple(to_checksum_address(a) for a in known_payment)

    def _call(self, address: str, name: str) -> bytes:
        try:
            answer = self.web3.eth.call({"to": address, "data": "0x" + _SELECTORS[name].hex(), "gas": CALL_GAS})
        except Web3Exception as error:  # the node answered: a revert or out of gas (a connection error propagates)
            raise TokenLookupError(f"{name}() failed: {str(error)[:120]}") from None
        if not answer:
            raise TokenLookupError(f"{name}() answered nothing (no contract at {address}?)")
        return bytes(answer)

    def read(self, address: str) -> dict[str, Any]:
        """symbol, name and decimals of the ERC-20 at `address` from the chain; TokenLookupError when unusable."""
        codec = self.web3.codec
        try:
            symbol = _text(codec, self._call(address, "symbol"), MAX_SYMBOL, "symbol")
            try:
                name = _text(codec, self._call(address, "name"), MAX_NAME, "name")
            except TokenLookupError:
                name = None  # name() is optional in ERC-20
            raw = self._call(address, "decimals")
            (decimals,) = codec.decode(["uint256"], raw)
        except TokenLookupError:
            raise
        except Exception as error:  # noqa: BLE001  (an answer that does not decode: the token is not usable)
            raise TokenLookupError(f"decimals() did not answer a number: {str(error)[:120]}") from None
        if decimals > MAX_DECIMALS:
            raise TokenLookupError(f"decimals() answered {decimals}, more than {MAX_DECIMALS}")
        return {"symbol": symbol, "name": name, "decimals": int(decimals)}

    def _wanted(self) -> list[tuple[str, bool, bool]]:
        """(address, stake, payment) of tokens to look up or to mark with a role, bounded."""
        with self.engine.connect() as connection:
            stored = {row.address: (row.stake, row.payment)
                      for row in connection.execute(select(TOKENS.c.address, TOKENS.c.stake, TOKENS.c.payment))}
            seen = [row[0] for row in connection.execute(
                select(REQUESTS.c.payment_token).distinct().order_by(REQUESTS.c.payment_token)
                .limit(MAX_TOKENS + len(stored)))]
        wanted: dict[str, list[bool]] = {self.stake_token: [True, False]}
        for address in (*self.known_payment, *seen):
            try:
                address = to_checksum_address(address)
            except ValueError:
                continue
            wanted.setdefault(address, [False, False])[1] = True
        out = []
        for address, (stake, payment) in wanted.items():
            old = stored.get(address)
            if old is None or (stake and not old[0]) or (payment and not old[1]):
                out.append((address, stake or bool(old and old[0]), payment or bool(old and old[1])))
        return out

    def fetch_missing(self) -> list[str]:
        """Look up tokens not stored yet (and mark new roles); returns the addresses written."""
        written = []
        lookups = 0
        with self.engine.connect() as connection:
            stored = {row.address for row in connection.execute(select(TOKENS.c.address))}
        for address, stake, payment in self._wanted():
            if address in stored:
                with self.engine.begin() as connection:
                    connection.execute(update(TOKENS).where(TOKENS.c.address == address)
                                       .values(stake=stake, payment=payment))
                written.append(address)
                continue
            if lookups >= LOOKUPS_PER_STEP or len(stored) >= MAX_TOKENS:
                break
            lookups += 1
            row: dict[str, Any] = {"address": address, "stake": stake, "payment": payment, "symbol": None,
                                   "name": None, "decimals": None, "error": None, "looked_up_at": int(time.time())}
            try:
                row.update(self.read(address))
            except TokenLookupError as error:
                row["error"] = str(error)[:200]
                log.warning("token %s: %s; its amounts are served without units", address, error)
            with self.engine.begin() as connection:
                connection.execute(insert(TOKENS).values(**row))
            stored.add(address)
            written.append(address)
            if row["error"] is None:
                log.info("token %s is %s (%d decimals)", address, row["symbol"], row["decimals"])
        return written


def token_rows(engine: Engine) -> list[dict[str, Any]]:
    """Every stored token, by address, as `GET /v1/tokens` serves it."""
    with engine.connect() as connection:
        rows = connection.execute(select(TOKENS).order_by(TOKENS.c.address)).mappings().all()
    return [{"address": row["address"], "symbol": row["symbol"], "name": row["name"], "decimals": row["decimals"],
             "roles": [role for role in ("stake", "payment") if row[role]], "error": row["error"]} for row in rows]
