"""The chain follower: every negawatt contract event from the deployment block on, into the mirror.

Each poll: (1) check that the last indexed block is still canonical; if not, find the fork among
the kept block hashes and roll the mirror back to it with the undo journal (a fork deeper than the
kept history resets the mirror and re-indexes from the deployment block); (2) index up to
`head - confirmations` with eth_getLogs in bounded ranges, one database transaction per range,
so a restart resumes after the last committed range; (3) fetch and verify the oracle documents of
reports that lack one. A range is committed only if the chain did not move under it (the hashes of
its first parent and last block are the same before and after the getLogs call).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Engine
from web3 import Web3

from api.documents import DocumentFetcher
from api.events import ChainLog, EventDecoder
from api.journal import prune, rollback
from api.models import CHAIN_TABLES, api_metadata
from api.projection import Projection
from protocol.manifest import Manifest

log = logging.getLogger(__name__)

STATE = api_metadata.tables["indexer_state"]
HASHES = api_metadata.tables["block_hashes"]
EVENTS = api_metadata.tables["chain_events"]
UNDO = api_metadata.tables["undo_log"]
ORACLES = api_metadata.tables["oracles"]


@dataclass
class Progress:
    """Where the indexer stands, for readiness and the stream; `polled_at` is when it last reached the RPC
    (time.monotonic(); 0: never in this process)."""

    indexed_block: int
    head_block: int
    polled_at: float = 0.0

    @property
    def lag_blocks(self) -> int:
        """Blocks between the chain head and the last indexed block."""
        return max(0, self.head_block - self.indexed_block)


Listener = Callable[[str, Any], None]
"""Called after each commit: ("events", [event rows]), ("reorg", fork block) or ("documents", [digests])."""


class MirrorMismatch(RuntimeError):
    """The database already mirrors another chain."""


class ChainMoved(RuntimeError):
    """The chain reorganised while a range was being read; the range is read again."""


def _hex(value: Any) -> str:
    return "0x" + bytes(value).hex()


class Indexer:
    """Follows one deployment on one chain into the mirror at `engine`."""

    def __init__(self, engine: Engine, web3: Web3, manifest: Manifest, confirmations: int = 2,
                 log_range: int = 2_000, undo_depth: int = 1_024, oracle_urls: list[str] | None = None,
                 listener: Listener | None = None, oracle_timeout: float = 10.0):
        self.engine = engine
        self.web3 = web3
        self.manifest = manifest
        self.confirmations = confirmations
        self.log_range = log_range
        self.undo_depth = undo_depth
        self.oracle_urls = oracle_urls or []
        self.listener = listener or (lambda _kind, _data: None)
        self.decoder = EventDecoder(manifest, web3)
        self.documents = DocumentFetcher(engine, timeout=oracle_timeout)
        self.start_block = manifest.start_block
        self.progress = Progress(self.start_block - 1, 0)
        state = self._state()
        if state is not None:
            if state["chain_id"] != manifest.chainId:
                raise MirrorMismatch(f"the database mirrors chain {state['chain_id']}, the manifest is for chain "
                                   f"{manifest.chainId}; use another database")
            self.progress = Progress(state["last_block"], state["head_block"])

    # ------------------------------------------------------------------ state

    def _state(self) -> dict[str, Any] | None:
        with self.engine.connect() as connection:
            row = connection.execute(select(STATE).where(STATE.c.id == 1)).mappings().first()
            return dict(row) if row else None

    def _block_hash(self, number: int) -> str | None:
        if number < 0:
            return None
        block = self.web3.eth.get_block(number)
        return _hex(block["hash"]) if block else None

    def _head(self) -> int:
        return int(self.web3.eth.block_number)

    # ------------------------------------------------------------------ one poll

    def step(self) -> int:
        """One poll: reorg check, index what is confirmed, fetch missing documents. Returns blocks indexed."""
        head = self._head()
        state = self._state()
        last = state["last_block"] if state else self.start_block - 1
        last_hash = state["last_hash"] if state else ""
        if state and last >= 0 and last_hash:
            current = self._block_hash(last) if last <= head else None
            if current != last_hash:
                last, last_hash = self._handle_reorg(last, head)
        target = head - self.confirmations
        indexed = 0
        while last < target:
            to = min(target, last + self.log_range)
            try:
                to, to_hash, logs = self._read_range(last, last_hash, to)
            except ChainMoved as error:
                log.info("chain moved while reading blocks %d..%d (%s); checking again", last + 1, to, error)
                break
            self._commit_range(last, to, to_hash, logs, head)
            indexed += to - last
            last, last_hash = to, to_hash
        self._fetch_documents()
        # published after the documents were tried: a client that sees block N indexed also sees the
        # verified documents of the reports up to N that an oracle served
        self.progress = Progress(last, head, time.monotonic())
        return indexed

    def _read_range(self, last: int, last_hash: str, to: int) -> tuple[int, str, list[ChainLog]]:
        """Decoded logs of blocks last+1..to, read while the chain holds still (halving on RPC limits)."""
        while True:
            to_hash = self._block_hash(to)
            try:
                raw = self.web3.eth.get_logs({"fromBlock": last + 1, "toBlock": to,
                                              "address": self.decoder.address_list})
            except Exception as error:  # providers cap results per call: read a smaller range
                if to - last <= 1:
                    raise
                log.info("eth_getLogs %d..%d failed (%s); halving the range", last + 1, to, error)
                to = last + max(1, (to - last) // 2)
                continue
            break
        if last_hash and self._block_hash(last) != last_hash:
            raise ChainMoved(f"block {last} changed")
        if self._block_hash(to) != to_hash or to_hash is None:
            raise ChainMoved(f"block {to} changed")
        logs = [decoded for decoded in (self.decoder.decode(entry) for entry in raw) if decoded is not None]
        logs.sort(key=lambda entry: (entry.block, entry.log_index))
        for entry in logs:
            if entry.block == to and entry.block_hash != to_hash:
                raise ChainMoved(f"a log of block {to} is from another branch")
        return to, to_hash, logs

    def _commit_range(self, last: int, to: int, to_hash: str, logs: list[ChainLog], head: int) -> None:
        hashes = {entry.block: entry.block_hash for entry in logs}
        hashes[to] = to_hash
        with self.engine.begin() as connection:
            rows = Projection(connection, journal=to > head - self.confirmations - self.undo_depth).apply(logs)
            connection.execute(delete(HASHES).where(HASHES.c.number.in_(list(hashes))))
            connection.execute(insert(HASHES), [{"number": n, "hash": h} for n, h in sorted(hashes.items())])
            values = {"last_block": to, "last_hash": to_hash, "head_block": head, "updated_at": int(time.time())}
            if connection.execute(update(STATE).where(STATE.c.id == 1).values(**values)).rowcount == 0:
                connection.execute(insert(STATE).values(id=1, chain_id=self.manifest.chainId, **values))
            keep_from = to - self.undo_depth
            prune(connection, keep_from)
            connection.execute(delete(HASHES).where(HASHES.c.number < keep_from))
        if logs:
            log.info("indexed blocks %d..%d: %d events", last + 1, to, len(logs))
        self.listener("events", rows)

    # ------------------------------------------------------------------ reorgs

    def _handle_reorg(self, last: int, head: int) -> tuple[int, str]:
        """Roll back to the newest kept block that is still canonical; returns (block, hash) to resume at."""
        with self.engine.connect() as connection:
            kept = connection.execute(select(HASHES.c.number, HASHES.c.hash).where(HASHES.c.number <= last)
                                      .order_by(HASHES.c.number.desc())).all()
        fork = None
        for number, stored in kept:
            if number <= head and self._block_hash(number) == stored:
                fork = (number, stored)
                break
        if fork is None:
            log.warning("reorg deeper than the kept history (%d blocks): re-indexing from block %d",
                        self.undo_depth, self.start_block)
            self.reset()
            return self.start_block - 1, ""
        number, stored = fork
        with self.engine.begin() as connection:
            undone = rollback(connection, number)
            connection.execute(delete(EVENTS).where(EVENTS.c.block > number))
            connection.execute(delete(HASHES).where(HASHES.c.number > number))
            connection.execute(update(STATE).where(STATE.c.id == 1).values(last_block=number, last_hash=stored,
                                                                           updated_at=int(time.time())))
        log.warning("reorg: rolled the mirror back from block %d to %d (%d writes undone)", last, number, undone)
        self.listener("reorg", number)
        return number, stored

    def reset(self) -> None:
        """Forget everything indexed from the chain (owner profiles, sessions and documents stay)."""
        with self.engine.begin() as connection:
            for name in (*CHAIN_TABLES, "chain_events", "block_hashes", "undo_log", "indexer_state"):
                connection.execute(delete(api_metadata.tables[name]))
        self.listener("reorg", self.start_block - 1)

    # ------------------------------------------------------------------ documents

    def current_oracle_urls(self) -> list[str]:
        """The configured oracle URLs, else the URLs the OracleHub's active oracles published."""
        if self.oracle_urls:
            return list(self.oracle_urls)
        with self.engine.connect() as connection:
            rows = connection.execute(select(ORACLES.c.url).where(ORACLES.c.active.is_(True), ORACLES.c.url != "")
                                      .order_by(ORACLES.c.address)).all()
        return [row.url.rstrip("/") for row in rows]

    def _fetch_documents(self) -> None:
        urls = self.current_oracle_urls()
        if not urls:
            return
        stored = self.documents.fetch_missing(urls)
        if stored:
            self.listener("documents", stored)

    # ------------------------------------------------------------------ the loop

    def run(self, stop: threading.Event, poll_seconds: float = 2.0) -> None:
        """Poll until `stop` is set; errors are logged and retried with back-off (the chain may be down)."""
        backoff = poll_seconds
        while not stop.is_set():
            try:
                self.step()
                backoff = poll_seconds
                caught_up = self.progress.indexed_block >= self.progress.head_block - self.confirmations
                stop.wait(poll_seconds if caught_up else 0)
            except Exception as error:  # noqa: BLE001  (the RPC or the database may be away for a while)
                log.warning("indexer step failed: %r; retrying in %.1f s", error, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 60.0)
        self.documents.close()
