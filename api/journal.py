"""Journalled writes: every row the projection writes records what it replaced, by block, so a reorg
rolls the mirror back to any block within the kept depth exactly (rows restored, new rows removed).

Within one `apply` the journal also caches the rows it read or wrote and writes each changed row
once at `flush` (multi-row statements), so indexing a range with many events costs few statements.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, select, update
from sqlalchemy.engine import Connection

from api.models import api_metadata

UNDO = api_metadata.tables["undo_log"]


@cache
def _primary_key(table_name: str) -> tuple[str, ...]:
    return tuple(column.name for column in api_metadata.tables[table_name].primary_key.columns)


@cache
def _select_by_key(table_name: str) -> Any:
    table = api_metadata.tables[table_name]
    return select(table).where(and_(*(table.c[c] == bindparam(f"k_{c}") for c in _primary_key(table_name))))


@cache
def _update_by_key(table_name: str) -> Any:
    table = api_metadata.tables[table_name]
    keys = _primary_key(table_name)
    return (update(table).where(and_(*(table.c[c] == bindparam(f"k_{c}") for c in keys)))
            .values({c.name: bindparam(f"v_{c.name}") for c in table.columns if c.name not in keys}))


def _where(table_name: str, key: dict[str, Any]) -> Any:
    table = api_metadata.tables[table_name]
    return and_(*(table.c[column] == value for column, value in key.items()))


class Journal:
    """Reads and writes projection rows on one connection (inside the caller's transaction)."""

    def __init__(self, connection: Connection, enabled: bool = True):
        self.connection = connection
        self.enabled = enabled
        self._undo: list[dict[str, Any]] = []
        self._rows: dict[tuple[str, tuple], dict[str, Any] | None] = {}
        self._dirty: dict[tuple[str, tuple], str] = {}

    @staticmethod
    def _id(table_name: str, key: dict[str, Any]) -> tuple[str, tuple]:
        return table_name, tuple(key[c] for c in _primary_key(table_name))

    def get(self, table_name: str, key: dict[str, Any]) -> dict[str, Any] | None:
        """The row of `table_name` with primary key `key`, as a dict (a copy), or None."""
        ident = self._id(table_name, key)
        if ident not in self._rows:
            row = self.connection.execute(_select_by_key(table_name),
                                          {f"k_{c}": v for c, v in key.items()}).mappings().first()
            self._rows[ident] = dict(row) if row is not None else None
        found = self._rows[ident]
        return dict(found) if found is not None else None

    def put(self, table_name: str, key: dict[str, Any], values: dict[str, Any], block: int,
            previous: dict[str, Any] | None | bool = False) -> None:
        """Insert or update the row `key` of `table_name` with `values`, journalling its previous state.

        `previous` may pass the row the caller just read with `get` (None: it does not exist).
        """
        ident = self._id(table_name, key)
        old = self.get(table_name, key) if previous is False or ident not in self._rows else previous
        if self.enabled:
            self._undo.append({"block": block, "table_name": table_name, "key": json.dumps(key, sort_keys=True),
                               "previous": json.dumps(old, sort_keys=True) if old is not None else None})
        self._rows[ident] = {**(old or {}), **key, **values}
        self._dirty.setdefault(ident, "insert" if old is None else "update")

    def flush(self) -> None:
        """Write every changed row (one statement per table and kind) and the journal entries."""
        inserts: dict[str, list[dict]] = {}
        updates: dict[str, list[dict]] = {}
        for ident, kind in self._dirty.items():
            table_name = ident[0]
            row = self._rows[ident]
            if kind == "insert":
                inserts.setdefault(table_name, []).append(row)
            else:
                keys = _primary_key(table_name)
                params = {f"k_{c}": row[c] for c in keys}
                params.update({f"v_{c}": v for c, v in row.items() if c not in keys})
                updates.setdefault(table_name, []).append(params)
        for table_name, rows in inserts.items():
            self.connection.execute(insert(api_metadata.tables[table_name]), rows)
        for table_name, rows in updates.items():
            self.connection.execute(_update_by_key(table_name), rows)
        if self._undo:
            self.connection.execute(insert(UNDO), self._undo)
        self._undo, self._dirty = [], {}


def rollback(connection: Connection, fork_block: int) -> int:
    """Undo every journalled write of blocks after `fork_block`, newest first; returns how many."""
    entries = connection.execute(
        select(UNDO.c.id, UNDO.c.table_name, UNDO.c.key, UNDO.c.previous)
        .where(UNDO.c.block > fork_block).order_by(UNDO.c.id.desc())
    ).all()
    for entry in entries:
        table = api_metadata.tables[entry.table_name]
        key = json.loads(entry.key)
        connection.execute(delete(table).where(_where(entry.table_name, key)))
        if entry.previous is not None:
            connection.execute(insert(table).values(**json.loads(entry.previous)))
    connection.execute(delete(UNDO).where(UNDO.c.block > fork_block))
    return len(entries)


def prune(connection: Connection, below_block: int) -> None:
    """Forget journal entries of blocks before `below_block` (they can no longer be reorged)."""
    connection.execute(delete(UNDO).where(UNDO.c.block < below_block))
