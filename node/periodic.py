"""The node's main loop as a table of periodic tasks: each task runs when its period has passed
since its last successful run (or at once when its wake-up event is set), in table order, and a
task that fails is logged and tried again on the next turn without keeping the others from running.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

log = logging.getLogger("negawatt.node")


@dataclass
class PeriodicTask:
    """`run()` every `every_seconds` (0: every turn); also as soon as `wake` is set, if given."""

    name: str
    every_seconds: float
    run: Callable[[], object]
    wake: threading.Event | None = None
    last_run: float = field(default=float("-inf"), init=False)  # monotonic time of the last success

    def due(self, now: float) -> bool:
        """Whether the task should run at monotonic time `now`."""
        return (self.wake is not None and self.wake.is_set()) or now - self.last_run >= self.every_seconds


class Scheduler:
    """Runs a table of `PeriodicTask`s, one turn every `turn_seconds` (see the module docstring)."""

    def __init__(self, tasks: Sequence[PeriodicTask], clock: Callable[[], float] = time.monotonic):
        self.tasks = list(tasks)
        self.clock = clock

    def run_due(self) -> list[str]:
        """One turn: run every task that is due, in order; returns the names of those that succeeded."""
        ran = []
        for task in self.tasks:
            if not task.due(self.clock()):
                continue
            if task.wake is not None:
                task.wake.clear()
            try:
                task.run()
            except Exception:  # the node must survive a chain or oracle hiccup; the next turn retries
                log.exception("node task %s failed", task.name)
                continue
            task.last_run = self.clock()
            ran.append(task.name)
        return ran

    def run(self, stop: threading.Event, turn_seconds: float = 0.1) -> None:
        """Turn until `stop` is set."""
        while not stop.is_set():
            self.run_due()
            stop.wait(turn_seconds)
