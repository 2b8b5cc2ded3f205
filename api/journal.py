"""Journalled writes: every row the projection writes records what it replaced, by block, so a reorg
rolls the mirror back to any block within the kept depth exactly (rows restored, new rows removed)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.engine import Connection

from api.models import api_metadata

UNDO = api_metadata.tables["undo_log"]


class Journal:
    """Reads and writes projection rows on one connection (inside the caller's transaction)."""

    def __init__(self, connection: Connection, enabled: bool = True):
        self.connection = connection
        self.enabled = enabled
        self._pending: list[dict[str, Any]] = []

    @staticmethod
    def _where(table_name: str, key: dict[str, Any]) -> Any:
        table = api_metadata.tables[table_name]
        return and_(*(table.c[column] == value for column, value in key.items()))

    def get(self, table_name: str, key: dict[str, Any]) -> dict[str, Any] | None:
        """The row of `table_name` with primary key `key`, as a dict, or None."""
        table = api_metadata.tables[table_name]
        row = self.connection.execute(select(table).where(self._where(table_name, key))).mappings().first()
        return dict(row) if row is not None else None

    def put(self, table_name: str, key: dict[str, Any], values: dict[str, Any], block: int,
            previous: dict[str, Any] | None | bool = False) -> None:
        """Insert or update the row `key` of `table_name` with `values`, journalling its previous state.

        `previous` may pass the row the caller already read (None: it does not exist) to save a query.
        """
        table = api_metadata.tables[table_name]
        old = self.get(table_name, key) if previous is False else previous
        if self.enabled:
            self._pending.append({"block": block, "table_name": table_name, "key": json.dumps(key, sort_keys=True),
                                  "previous": json.dumps(old, sort_keys=True) if old is not None else None})
        if old is None:
            self.connection.execute(insert(table).values(**key, **values))
        else:
            self.connection.execute(update(table).where(self._where(table_name, key)).values(**values))

    def flush(self) -> None:
        """Write the journal entries collected so far (one multi-row insert)."""
        if self._pending:
            self.connection.execute(insert(UNDO), self._pending)
            self._pending = []


def rollback(connection: Connection, fork_block: int) -> int:
    """Undo every journalled write of blocks after `fork_block`, newest first; returns how many."""
    entries = connection.execute(
        select(UNDO.c.id, UNDO.c.table_name, UNDO.c.key, UNDO.c.previous)
        .where(UNDO.c.block > fork_block).order_by(UNDO.c.id.desc())
    ).all()
    for entry in entries:
        table = api_metadata.tables[entry.table_name]
        key = json.loads(entry.key)
        connection.execute(delete(table).where(Journal._where(entry.table_name, key)))
        if entry.previous is not None:
            connection.execute(insert(table).values(**json.loads(entry.previous)))
    connection.execute(delete(UNDO).where(UNDO.c.block > fork_block))
    return len(entries)


def prune(connection: Connection, below_block: int) -> None:
    """Forget journal entries of blocks before `below_block` (they can no longer be reorged)."""
    connection.execute(delete(UNDO).where(UNDO.c.block < below_block))
