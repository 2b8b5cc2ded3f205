"""Progress of the devnet's long steps (node set-up, history delivery), on a terminal and in a log.

The rule: a long step is never silent. On a terminal it is a rich progress bar; when the output is a
file or a pipe (CI, `make demo | tee`), rich draws nothing until the end, so the same updates become
plain lines instead: one when the step starts, one each time another `LINE_STEP_PERCENT` is done,
and one when it ends, each with the count and the elapsed seconds.
"""

from __future__ import annotations

import time
from typing import Any

LINE_STEP_PERCENT = 20


class StepProgress:
    """One named step with a known total, shown as a bar (terminal) or as lines (log)."""

    def __init__(self, console: Any, label: str, total: int, unit: str = "") -> None:
        self.console, self.label, self.total, self.unit = console, label, max(0, total), unit
        self.began = time.monotonic()
        self.done = 0
        self._next_line = LINE_STEP_PERCENT
        self._bar = None
        self._task = None
        if console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, transient=True)
            self._bar.start()
            self._task = self._bar.add_task(label, total=self.total or None)
        else:
            console.print(f"… {label}: 0 of {self.total}{self._unit()}")

    def _unit(self) -> str:
        return f" {self.unit}" if self.unit else ""

    def update(self, done: int) -> None:
        """`done` of the total are finished (it may go up by more than one at a time)."""
        self.done = max(self.done, min(done, self.total))
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done)
            return
        percent = 100 * self.done // self.total if self.total else 100
        if percent >= self._next_line and self.done < self.total:
            self.console.print(f"… {self.label}: {self.done} of {self.total}{self._unit()} "
                               f"({percent} %, {time.monotonic() - self.began:.0f} s)")
            while self._next_line <= percent:
                self._next_line += LINE_STEP_PERCENT

    def close(self) -> float:
        """End the step; returns its duration in seconds."""
        seconds = time.monotonic() - self.began
        if self._bar is not None:
            self._bar.stop()
        elif self.done < self.total:
            self.console.print(f"… {self.label}: stopped at {self.done} of {self.total}{self._unit()}")
        return seconds

    def __enter__(self) -> "StepProgress":
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()
