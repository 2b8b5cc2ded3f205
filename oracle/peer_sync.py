"""Bulk peer sync: copy every signed meter batch of a time range from a peer oracle, page by page.

The rule: nothing a peer sends is trusted. Each page (GET /v1/meter-batches/range, oracle.peer_sync_api)
is bounded before it is parsed (at most `max_page_bytes`, at most `limit` lines plus the closing
line, which must be there and count the lines: a cut page is dropped whole), each line's shape is
checked before it is decoded (a JSON object with the signed fields only, readings and signature of
bounded length), each batch is decoded with the protocol codec (protocol.messages), its signature is
checked in bulk against the device it names (protocol.fast_verify.BulkBatchVerifier), and what
passes is stored through `Ingestor.accept_batches`, so the ingest's own rules decide (registered
device, shape, readings range, sequence and overlap). A refused batch is counted by its code and
does not stop the rest of the page.

Batches this oracle already holds (same device and sequence in the range) are skipped before any
signature check: storing them again would be a replay or a conflict, never a new batch.

Where a pull got to is kept per peer and range in the database (`oracle.db.put_value`, key
`peer_sync:<peer>:<from>:<to>`) after each page is stored, so a pull stopped by a peer that died or
answered garbage, or by the chain or the database being unavailable, resumes from the last whole
page; a later pull of the same range asks only for what the peer stored since.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from oracle import db, meter_store
from oracle.ingest import Ack, ChainUnavailable, Ingestor
from oracle.peer_sync_api import DEFAULT_PAGE_BATCHES, MAX_PAGE_BATCHES, NDJSON
from protocol.fast_verify import BulkBatchVerifier
from protocol.messages import MAX_SIGNATURE_CHARS, decode_batch
from protocol.meter import MeterBatch

log = logging.getLogger("negawatt.oracle.peer_sync")

PATH = "/v1/meter-batches/range"
SIGNED_FIELDS = frozenset({"device", "start", "intervalSeconds", "readings", "sequence", "signature"})
LISTED_FIELDS = SIGNED_FIELDS | {"receivedAt"}
# A line of a day-long batch is about 700 bytes; a page of MAX_PAGE_BATCHES such lines fits 8 MB with room.
DEFAULT_MAX_PAGE_BYTES = 16 * 1024 * 1024
DEFAULT_MAX_READINGS = 96


class PageRefused(Exception):
    """A page the puller does not take at all (too big, cut short, not NDJSON, malformed closing line)."""


@dataclass
class PullResult:
    """What one pull from one peer did: pages read, batches received (lines), skipped (already held
    here), stored (new), replays (held already, found by the ingest), refused (by reason code), whether
    it reached the end of the range (`complete`) or why it stopped (`stopped`), and where the time went."""

    peer: str
    pages: int = 0
    received: int = 0
    skipped: int = 0
    stored: int = 0
    replays: int = 0
    refused: Counter = field(default_factory=Counter)
    complete: bool = False
    stopped: str | None = None
    cursor: int = 0
    seconds: float = 0.0
    parts: dict[str, float] = field(default_factory=lambda: {"http": 0.0, "decode": 0.0, "verify": 0.0,
                                                             "store": 0.0})

    def as_dict(self) -> dict[str, Any]:
        """The result as JSON-able data (for logs and the benchmark)."""
        return {"peer": self.peer, "pages": self.pages, "received": self.received, "skipped": self.skipped,
                "stored": self.stored, "replays": self.replays, "refused": dict(self.refused),
                "complete": self.complete, "stopped": self.stopped, "cursor": self.cursor,
                "seconds": round(self.seconds, 3), "parts": {k: round(v, 3) for k, v in self.parts.items()}}


def cursor_key(peer_url: str, from_ts: int, to_ts: int) -> str:
    """The key-value key holding where the pull of [from_ts, to_ts) from `peer_url` got to."""
    return f"peer_sync:{peer_url.rstrip('/')}:{from_ts}:{to_ts}"


def check_line(item: Any, max_readings: int) -> str | None:
    """Why a decoded NDJSON line is not a listed batch (None when its shape and bounds are right).
    Cheap checks only, before the codec validates every field."""
    if not isinstance(item, dict):
        return "not a JSON object"
    unknown = item.keys() - LISTED_FIELDS
    if unknown:
        return f"unknown fields {sorted(unknown)[:3]}"
    missing = SIGNED_FIELDS - item.keys()
    if missing:
        return f"missing fields {sorted(missing)}"
    readings = item["readings"]
    if not isinstance(readings, list) or not 0 < len(readings) <= max_readings:
        return f"readings must be a list of 1 to {max_readings} integers"
    signature = item["signature"]
    if not isinstance(signature, str) or len(signature) > MAX_SIGNATURE_CHARS:
        return f"signature must be a hex string of at most {MAX_SIGNATURE_CHARS} characters"
    received_at = item.get("receivedAt", 0)
    if isinstance(received_at, bool) or not isinstance(received_at, int):
        return "receivedAt must be an integer"
    return None


def read_page(http: httpx.Client, url: str, params: dict[str, int], max_bytes: int, limit: int) -> tuple[list[bytes], dict]:
    """(the batch lines, the closing line) of one page; PageRefused says why a page is not taken,
    httpx.HTTPError when the peer cannot be reached or drops the connection."""
    with http.stream("GET", url, params=params) as response:
        if response.status_code != 200:
            body = response.read()[:300].decode("utf-8", "replace")
            raise PageRefused(f"HTTP {response.status_code}: {body}")
        media_type = response.headers.get("content-type", "").split(";")[0].strip()
        if media_type != NDJSON:
            raise PageRefused(f"content type {media_type!r}, not {NDJSON}")
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise PageRefused(f"the page declares {declared} bytes; at most {max_bytes}")
        body = bytearray()
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > max_bytes:
                raise PageRefused(f"the page is larger than {max_bytes} bytes")
    lines = bytes(body).split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    if not lines:
        raise PageRefused("an empty page (no closing line)")
    if len(lines) > limit + 1:
        raise PageRefused(f"{len(lines) - 1} batches in a page asked for at most {limit}")
    try:
        closing = orjson.loads(lines[-1])
    except orjson.JSONDecodeError:
        raise PageRefused("the page was cut short (its last line is not the closing line)") from None
    if not isinstance(closing, dict) or set(closing) != {"next", "cursor", "count"}:
        raise PageRefused("the page was cut short (its last line is not the closing line)")
    count, cursor, after = closing["count"], closing["cursor"], closing["next"]
    if not _is_int(count) or count != len(lines) - 1:
        raise PageRefused(f"the closing line counts {count!r} batches, the page has {len(lines) - 1}")
    if not _is_int(cursor) or not params["after"] <= cursor <= db.MAX_DB_INT:
        raise PageRefused(f"the closing line's cursor {cursor!r} is not an id after {params['after']}")
    if after is not None and (after != cursor or count == 0):
        raise PageRefused(f"the closing line's next {after!r} does not follow the page")
    return lines[:-1], closing


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def stored_keys(engine: Engine, from_ts: int, to_ts: int, page: int = 5_000,
                max_span_seconds: int = 86_400) -> set[tuple[str, int]]:
    """(device, sequence) of every batch this oracle holds overlapping [from_ts, to_ts)."""
    keys: set[tuple[str, int]] = set()
    after = 0
    while True:
        records = meter_store.batches_in_range(engine, from_ts, to_ts, after=after, limit=page,
                                               max_span_seconds=max_span_seconds)
        keys.update((record.device, record.sequence) for record in records)
        if len(records) < page:
            return keys
        after = records[-1].id


def pull_range(engine: Engine, ingestor: Ingestor, peer_url: str, from_ts: int, to_ts: int, http: httpx.Client, *,
               limit: int = MAX_PAGE_BATCHES, max_page_bytes: int = DEFAULT_MAX_PAGE_BYTES,
               max_readings: int | None = None, verifier: BulkBatchVerifier | None = None,
               clock: Callable[[], float] = time.time, max_pages: int | None = None,
               resume: bool = True) -> PullResult:
    """Copy the batches of [from_ts, to_ts) that `peer_url` holds and this oracle lacks, every
    signature verified and every batch accepted by `ingestor`; returns the counts (see PullResult).

    Starts from the cursor stored for this peer and range (`resume`; from the start otherwise) and
    stores it after each page, so a stopped pull (peer down, garbage, chain or database unavailable:
    `stopped` says which, logged at WARNING) resumes where it stopped. `max_pages` stops after that
    many pages (the rest on the next call). `verifier` defaults to one for the ingestor's domain.
    """
    started = time.perf_counter()
    peer = peer_url.rstrip("/")
    result = PullResult(peer)
    if not 0 <= from_ts < to_ts <= db.MAX_DB_INT:
        raise ValueError(f"[{from_ts}, {to_ts}) is not a time range")
    limit = max(1, min(limit, MAX_PAGE_BATCHES))
    max_readings = max_readings or getattr(getattr(ingestor, "settings", None), "max_readings", DEFAULT_MAX_READINGS)
    own_verifier = verifier is None
    if verifier is None:
        verifier = BulkBatchVerifier(ingestor.verifier.separator)
    key = cursor_key(peer, from_ts, to_ts)
    saved = db.get_value(engine, key) if resume else None
    after = int(saved["after"]) if isinstance(saved, dict) and _is_int(saved.get("after")) else 0
    result.cursor = after
    held = stored_keys(engine, from_ts, to_ts, max_span_seconds=ingestor.max_span_seconds)
    parts = result.parts
    try:
        while max_pages is None or result.pages < max_pages:
            mark = time.perf_counter()
            try:
                lines, closing = read_page(http, peer + PATH, {"from": from_ts, "to": to_ts, "after": after,
                                                                "limit": limit}, max_page_bytes, limit)
            except httpx.HTTPError as error:
                return _stop(result, f"peer unreachable or the connection dropped: {error!r}")
            except PageRefused as error:
                return _stop(result, f"page after {after} refused: {error}")
            finally:
                parts["http"] += time.perf_counter() - mark
            result.pages += 1
            result.received += len(lines)

            mark = time.perf_counter()
            batches: list[MeterBatch] = []
            for line in lines:
                batch = _decode(line, max_readings, result)
                if batch is None:
                    continue
                if (batch.device, batch.sequence) in held:
                    result.skipped += 1
                    continue
                batches.append(batch)
            parts["decode"] += time.perf_counter() - mark

            mark = time.perf_counter()
            verified = []
            for batch, check in zip(batches, verifier.check(batches)):
                if check.ok:
                    verified.append(batch)
                else:
                    result.refused["bad_signature"] += 1
                    log.warning("batch %s #%d from %s not taken: bad_signature (%s)", batch.device, batch.sequence,
                                peer, check.reason)
            parts["verify"] += time.perf_counter() - mark

            mark = time.perf_counter()
            try:
                answers = ingestor.accept_batches(verified, int(clock())) if verified else []
            except (ChainUnavailable, db.DatabaseBusy) as error:
                # What this page stored before the error stays stored; the page is asked again next time.
                return _stop(result, f"the page after {after} could not be stored: {error}")
            finally:
                parts["store"] += time.perf_counter() - mark
            for batch, answer in zip(verified, answers):
                if isinstance(answer, Ack):
                    if answer.replay:
                        result.replays += 1
                    else:
                        result.stored += 1
                    held.add((batch.device, batch.sequence))
                else:
                    result.refused[answer.code] += 1
                    log.info("batch %s #%d from %s not taken: %s (%s)", batch.device, batch.sequence, peer,
                             answer.code, answer.detail)
            after = closing["cursor"]
            result.cursor = after
            db.put_value(engine, key, {"after": after})
            if closing["next"] is None:
                result.complete = True
                break
    finally:
        if own_verifier:
            verifier.close()
        result.seconds = time.perf_counter() - started
    if result.stored or result.refused:
        log.info("pulled from %s [%d, %d): %d new, %d held, %d refused %s in %.1f s", peer, from_ts, to_ts,
                 result.stored, result.skipped + result.replays, sum(result.refused.values()),
                 dict(result.refused), result.seconds)
    return result


def _decode(line: bytes, max_readings: int, result: PullResult) -> MeterBatch | None:
    """The batch of one NDJSON line, or None (counted as `invalid_payload` and logged)."""
    try:
        item = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        reason = f"not JSON: {error}"
    else:
        reason = check_line(item, max_readings)
        if reason is None:
            try:
                return decode_batch(item, ignore_extra=True)
            except (ValidationError, ValueError, TypeError) as error:
                reason = str(error).replace("\n", " ")[:300]
    result.refused["invalid_payload"] += 1
    log.warning("a line from %s not taken: invalid_payload (%s)", result.peer, reason)
    return None


def _stop(result: PullResult, reason: str) -> PullResult:
    result.stopped = reason
    log.warning("pull from %s stopped at cursor %d: %s", result.peer, result.cursor, reason)
    return result
