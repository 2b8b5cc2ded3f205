"""How every role's SQLite database is opened: durable and shared between a writer and readers."""

from __future__ import annotations

from typing import Any


def make_durable(dbapi_connection: Any, *, in_memory: bool, busy_timeout_seconds: float) -> None:
    """WAL (readers never block the writer), synchronous=FULL (a committed write survives a power
    cut) and a busy timeout (a second writer waits instead of failing) on a new SQLite connection."""
    cursor = dbapi_connection.cursor()
    if not in_memory:
        cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_seconds * 1000)}")
    cursor.close()
