"""Database engines for the mirror: a SQLite file (WAL) by default, PostgreSQL through its URL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from protocol.sqlite import make_durable

SQLITE_BUSY_TIMEOUT_SECONDS = 30.0


def normalize_url(url: str) -> str:
    """A SQLAlchemy URL from what users write: a bare path means a SQLite file; postgres(ql):// uses psycopg 3."""
    if "://" not in url:
        return f"sqlite:///{url}"
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def is_sqlite(engine: Engine) -> bool:
    """Whether `engine` talks to SQLite."""
    return engine.dialect.name == "sqlite"


def make_engine(url: str) -> Engine:
    """An engine for `url`. SQLite gets WAL, synchronous=FULL (a committed write survives a crash) and a
    busy timeout, so the indexer thread writes while the HTTP workers read."""
    url = normalize_url(url)
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)
    in_memory = url in ("sqlite://", "sqlite:///:memory:")
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
        poolclass=StaticPool if in_memory else None,
        pool_size=8, max_overflow=16,
    ) if not in_memory else create_engine(url, connect_args={"check_same_thread": False}, poolclass=StaticPool)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        make_durable(dbapi_connection, in_memory=in_memory, busy_timeout_seconds=SQLITE_BUSY_TIMEOUT_SECONDS)

    return engine
