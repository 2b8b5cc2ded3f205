"""A cheap load generator for the oracle's POST routes: raw asyncio streams, HTTP/1.1 keep-alive.

The rule: the client must cost far less CPU than the server it measures (they share 2 cores), so
bodies are encoded and signed before the timed phase, each connection sends one request at a time
over one kept-alive socket, and the answer is read by its Content-Length without a parser library.
At most `connections` requests are in flight. Each answer's status is counted and each request's
latency (first byte written to last byte read) kept; a connection the server closes is reopened and
the request retried once.

`post_bulk` sends the same kind of bodies as NDJSON uploads of `per_upload` lines to the bulk route
(POST /v1/meter-batches/bulk, oracle.bulk_ingest_api): each answer's item lines are counted by their
status (and refusal code) as the single answers are, its latency is the whole upload's.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np


@dataclass
class LoadResult:
    """What one load phase measured."""

    sent: int = 0
    seconds: float = 0.0
    statuses: Counter = field(default_factory=Counter)
    latencies_ms: list[float] = field(default_factory=list)
    refusals: Counter = field(default_factory=Counter)  # "status code" -> count, for non-2xx answers

    @property
    def ok(self) -> int:
        """Answers 200 (replay) or 201 (new): stored."""
        return self.statuses.get(200, 0) + self.statuses.get(201, 0)

    def percentile_ms(self, q: float) -> float:
        """The q-quantile (0..1) of the latencies, in ms (0 without any)."""
        return float(np.quantile(np.asarray(self.latencies_ms), q)) if self.latencies_ms else 0.0

    def merge(self, other: "LoadResult") -> None:
        """Add another phase's counts into this one (seconds add up)."""
        self.sent += other.sent
        self.seconds += other.seconds
        self.statuses.update(other.statuses)
        self.latencies_ms.extend(other.latencies_ms)
        self.refusals.update(other.refusals)


def _code_of(body: bytes) -> str:
    """The problem's reason code in a refusal body (the JSON field "code"), or "?"."""
    marker = body.find(b'"code":"')
    if marker < 0:
        return "?"
    end = body.find(b'"', marker + 8)
    return body[marker + 8:end].decode(errors="replace")


async def _answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, await reader.readexactly(length) if length else b""


def _count_bulk(result: LoadResult, status: int, answer: bytes, lines: int) -> None:
    """Count a bulk answer's items: each item line by its status (refusals by code); an upload refused
    whole, or an answer that does not account for every line, counts all its lines as refused."""
    if status != 200:
        result.statuses[status] += lines
        result.refusals[f"{status} {_code_of(answer)}"] += lines
        return
    rows = answer.split(b"\n")
    closing = json.loads(rows[-2]) if len(rows) >= 2 else {}
    items = rows[:-2]
    if closing.get("count") != lines or len(items) != lines:
        result.statuses[0] += lines
        result.refusals[f"0 answer of {len(items)} items for {lines} lines"] += lines
        return
    for index, row in enumerate(items):
        item = json.loads(row)
        if item.get("index") != index:
            raise AssertionError(f"bulk answer item {index} carries index {item.get('index')}")
        result.statuses[item["status"]] += 1
        if item["status"] not in (200, 201):
            result.refusals[f"{item['status']} {item['problem']['code']}"] += 1


async def _post_all(url: str, path: str, bodies: Sequence[bytes], connections: int,
                    progress: Callable[[int], None], lines: Sequence[int] | None = None,
                    content_type: str = "application/json") -> LoadResult:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    prefix = (f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
              "Content-Length: ").encode()
    result = LoadResult(sent=sum(lines) if lines is not None else len(bodies))
    cursor = iter(range(len(bodies)))
    done = 0

    async def worker() -> None:
        nonlocal done
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for index in cursor:
                body = bodies[index]
                request = prefix + str(len(body)).encode() + b"\r\n\r\n" + body
                for attempt in (0, 1):
                    began = time.perf_counter()
                    try:
                        writer.write(request)
                        status, answer = await _answer(reader)
                        break
                    except (ConnectionError, asyncio.IncompleteReadError):
                        writer.close()
                        if attempt:
                            raise
                        reader, writer = await asyncio.open_connection(host, port)
                result.latencies_ms.append((time.perf_counter() - began) * 1_000)
                if lines is not None:
                    _count_bulk(result, status, answer, lines[index])
                    done += lines[index]
                    progress(done)
                    continue
                result.statuses[status] += 1
                if status not in (200, 201):
                    result.refusals[f"{status} {_code_of(answer)}"] += 1
                done += 1
                if done % 500 == 0:
                    progress(done)
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(max(1, min(connections, len(bodies))))))
    result.seconds = time.perf_counter() - began
    progress(done)
    return result


def post_all(url: str, path: str, bodies: Sequence[bytes], connections: int = 16,
             progress: Callable[[int], None] = lambda done: None) -> LoadResult:
    """POST every body to `url` + `path` over `connections` kept-alive connections; the timing covers
    only the sending (the bodies are ready)."""
    if not bodies:
        return LoadResult()
    return asyncio.run(_post_all(url, path, bodies, connections, progress))


def post_bulk(url: str, path: str, bodies: Sequence[bytes], per_upload: int = 1_000, connections: int = 2,
              progress: Callable[[int], None] = lambda done: None) -> LoadResult:
    """POST `bodies` (single-route bodies, one line each) to the bulk route `url` + `path` as NDJSON
    uploads of at most `per_upload` lines over `connections` kept-alive connections; counts per item
    (see `_count_bulk`). The uploads are joined before the timing starts."""
    if not bodies:
        return LoadResult()
    uploads = [b"\n".join(bodies[i:i + per_upload]) + b"\n" for i in range(0, len(bodies), per_upload)]
    lines = [len(bodies[i:i + per_upload]) for i in range(0, len(bodies), per_upload)]
    return asyncio.run(_post_all(url, path, uploads, connections, progress, lines, "application/x-ndjson"))
