"""Timing every SQL statement an SQLAlchemy engine runs, for the services' Prometheus metrics.

The rule: the time of a statement runs from SQLAlchemy's `before_cursor_execute` to its
`after_cursor_execute` on the same connection (a stack, since a connection runs one statement at a
time but listeners may nest); the caller decides how to label it (`observe(statement, seconds)`).
A statement that fails has no `after` event and is not timed. SQLAlchemy is imported here only when
an engine is instrumented, so a gateway install (without SQLAlchemy) can import `protocol` freely.
"""

from __future__ import annotations

import time
from typing import Any, Callable

_STARTS = "negawatt_statement_starts"  # the per-connection stack of start times, in `conn.info`


def time_statements(engine: Any, observe: Callable[[str, float], None]) -> None:
    """Call `observe(statement, seconds)` after every statement `engine` runs."""
    from sqlalchemy import event

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, _cursor: Any, _statement: str, _params: Any, _context: Any, _many: bool) -> None:
        conn.info.setdefault(_STARTS, []).append(time.perf_counter())

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any, _many: bool) -> None:
        starts = conn.info.get(_STARTS)
        if starts:
            observe(statement, time.perf_counter() - starts.pop())


def first_word(statement: str) -> str:
    """The statement's first keyword ("SELECT", "insert", ...), as written; "" for an empty one."""
    return statement.lstrip().split(None, 1)[0] if statement.strip() else ""
