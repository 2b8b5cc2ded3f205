"""How an oracle logs: INFO by default, one line per decision, no library chatter.

The rule: an operator reading the log at INFO sees each decision once — a refused message (with its
reason), a commitment accepted, meter batches accepted (summarised: one line per `summary_seconds`
with counts, since nodes send one per interval per device), a report computed, proposed, signed for
a peer, submitted, finalized, a request cleared. Libraries that log every HTTP request or JSON-RPC
call (web3, urllib3, httpx, httpcore, uvicorn's access log) are held at WARNING whatever the level;
`-v` shows negawatt's own DEBUG lines, `-vv` the libraries' too.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

NOISY_LOGGERS = ("web3", "urllib3", "httpx", "httpcore", "asyncio", "uvicorn.access", "websockets", "hpack",
                 "multipart", "eth_account", "aiosqlite", "sqlalchemy")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
SUMMARY_SECONDS = 30.0

log = logging.getLogger("negawatt.oracle.ingest")


def configure_logging(verbosity: int = 0) -> None:
    """Root logging for `negawatt oracle run`: 0 -> INFO, 1 -> DEBUG for negawatt's own loggers,
    2 -> DEBUG for every library too. The noisy libraries stay at WARNING below 2."""
    logging.basicConfig(level=logging.DEBUG if verbosity >= 1 else logging.INFO, format=LOG_FORMAT, force=True)
    for name in NOISY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbosity >= 2 else logging.WARNING)
    # A library logger below them that was given its own level (by an imported plugin) follows them too.
    for name, child in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(child, logging.Logger) and name not in NOISY_LOGGERS and name.startswith(
                tuple(f"{noisy}." for noisy in NOISY_LOGGERS)):
            child.setLevel(logging.NOTSET)


class IngestLog:
    """The ingest's decisions as log lines: each refusal and each commitment on its own line,
    accepted meter batches summarised at most once per `summary_seconds` (see `flush`)."""

    def __init__(self, summary_seconds: float = SUMMARY_SECONDS, clock: Callable[[], float] = time.monotonic,
                 logger: logging.Logger = log):
        self.summary_seconds = summary_seconds
        self.clock = clock
        self.logger = logger
        self._lock = threading.Lock()
        self._since = clock()
        self._batches = 0
        self._readings = 0
        self._replays = 0
        self._devices: set[str] = set()

    def batch_accepted(self, device: str, readings: int) -> None:
        """Count one new meter batch of `device`; logs the summary when it is due."""
        with self._lock:
            self._batches += 1
            self._readings += readings
            self._devices.add(device)
        self.flush(force=False)

    def replayed(self) -> None:
        """Count one replay (an identical message answered with its stored ack)."""
        with self._lock:
            self._replays += 1

    def commitment_accepted(self, device: str, request_id: int, watts: int) -> None:
        """One line: a device committed to a request."""
        self.logger.info("accepted commitment of %s to request %d: %d W", device, request_id, watts)

    def refused(self, kind: str, code: str, detail: str) -> None:
        """One line: a message refused, with its reason code and detail."""
        self.logger.info("refused %s: %s (%s)", kind.replace("_", " "), code, detail)

    def flush(self, force: bool = True) -> None:
        """Log the batches accepted since the last summary (if any); unless `force`, only when due."""
        with self._lock:
            now = self.clock()
            elapsed = now - self._since
            if not self._batches and not self._replays:
                self._since = now
                return
            if not force and elapsed < self.summary_seconds:
                return
            batches, readings, devices, replays = self._batches, self._readings, len(self._devices), self._replays
            self._batches = self._readings = self._replays = 0
            self._devices = set()
            self._since = now
        self.logger.info("accepted %d meter batches (%d readings) from %d devices in the last %.0f s%s", batches,
                         readings, devices, elapsed, f"; {replays} replays answered" if replays else "")


class RepeatFilter:
    """A decision that is retried every tick (a refused finalize, too few signatures, an unreachable
    peer) logs at INFO when it first happens or changes, and at DEBUG while it repeats unchanged."""

    def __init__(self, logger: logging.Logger, keep: int = 1_024):
        self.logger = logger
        self.keep = keep
        self._last: dict[object, str] = {}
        self._lock = threading.Lock()

    def info(self, key: object, message: str, *args: object) -> None:
        """Log `message % args` at INFO unless it is what `key` logged last time (then DEBUG)."""
        text = message % args if args else message
        with self._lock:
            repeated = self._last.get(key) == text
            if not repeated:
                if len(self._last) >= self.keep:
                    self._last.pop(next(iter(self._last)))
                self._last[key] = text
        self.logger.log(logging.DEBUG if repeated else logging.INFO, "%s", text)

    def clear(self, key: object) -> None:
        """Forget `key`: its next line is logged at INFO again (the condition ended)."""
        with self._lock:
            self._last.pop(key, None)
