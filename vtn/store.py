"""The facade's SQL store (SQLAlchemy Core): every OpenADR object it serves, and what links them to
the market (an event's FlexMarket request, a resource's site, a site's next batch sequence).

The rule: an object is one row of `objects` (its kind, id, owning client id, the ids it refers to,
its targets, its JSON as served); reads filter in SQL on kind, owner and references, then on
targets in Python (the AND of the asked targets), and page with skip/limit in creation order.
`event_requests` maps an event to the request its buyer's escrow opened; `resource_sites` maps a
resource to the site key signing its meter batches; `site_sequences` keeps each site's next
MeterBatch sequence, so a sequence is never reused after a restart.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any, Iterable

from sqlalchemy import (Column, Integer, MetaData, String, Table, Text, create_engine, delete, event, func, insert,
                        select, update)
from sqlalchemy.engine import Engine
from sqlalchemy.pool import StaticPool

from vtn.models import iso

metadata = MetaData()

objects = Table(
    "objects", metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False, index=True),
    Column("client_id", String(128), nullable=False, index=True),
    Column("program_id", String(128), index=True),
    Column("event_id", String(128), index=True),
    Column("ven_id", String(128), index=True),
    Column("name", String(128)),
    Column("targets", Text, nullable=False, default="[]"),
    Column("body", Text, nullable=False),
)
event_requests = Table(
    "event_requests", metadata,
    Column("event_id", String(64), primary_key=True),
    Column("request_id", Integer, nullable=False),
    Column("buyer", String(42), nullable=False),
    Column("result_report_id", String(64)),
    Column("result", Text),
)
resource_sites = Table(
    "resource_sites", metadata,
    Column("resource_id", String(64), primary_key=True),
    Column("site", String(42), nullable=False, unique=True),
)
site_sequences = Table(
    "site_sequences", metadata,
    Column("site", String(42), primary_key=True),
    Column("next_sequence", Integer, nullable=False),
)


def make_engine(url: str) -> Engine:
    """An engine for `url` (a bare path is a SQLite file); SQLite gets WAL and a busy timeout."""
    if "://" not in url:
        url = f"sqlite:///{url}"
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    in_memory = url in ("sqlite://", "sqlite:///:memory:")
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                           poolclass=StaticPool if in_memory else None)

    @event.listens_for(engine, "connect")
    def _configure(connection: Any, _record: Any) -> None:
        cursor = connection.cursor()
        if not in_memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    return engine


def now() -> str:
    """The current time as the facade stamps objects."""
    return iso(datetime.now(UTC).replace(microsecond=0))


class Store:
    """Reads and writes of the facade's objects."""

    def __init__(self, engine: Engine):
        self.engine = engine
        metadata.create_all(engine)

    # objects ------------------------------------------------------------------------------------

    def create(self, kind: str, client_id: str, body: dict[str, Any], *, program_id: str | None = None,
               event_id: str | None = None, ven_id: str | None = None, name: str | None = None,
               targets: Iterable[str] | None = None, object_id: str | None = None) -> dict[str, Any]:
        """Store a new object; returns its served JSON (id and timestamps added)."""
        object_id = object_id or uuid.uuid4().hex[:20]
        stamp = now()
        served = {"id": object_id, "createdDateTime": stamp, "modificationDateTime": stamp, **body}
        with self.engine.begin() as connection:
            connection.execute(insert(objects).values(
                id=object_id, kind=kind, client_id=client_id, program_id=program_id, event_id=event_id,
                ven_id=ven_id, name=name, targets=json.dumps(sorted(set(targets or []))), body=json.dumps(served)))
        return served

    def replace(self, kind: str, object_id: str, body: dict[str, Any], *, program_id: str | None = None,
                event_id: str | None = None, ven_id: str | None = None, name: str | None = None,
                targets: Iterable[str] | None = None, client_id: str | None = None) -> dict[str, Any]:
        """Replace an object's content (its id and creation time stay); returns the served JSON."""
        current = self.get(kind, object_id)
        if current is None:
            raise KeyError(object_id)
        served = {"id": object_id, "createdDateTime": current["body"]["createdDateTime"],
                  "modificationDateTime": now(), **body}
        values = dict(program_id=program_id, event_id=event_id, ven_id=ven_id, name=name,
                      targets=json.dumps(sorted(set(targets or []))), body=json.dumps(served))
        if client_id is not None:
            values["client_id"] = client_id
        with self.engine.begin() as connection:
            connection.execute(update(objects).where(objects.c.id == object_id, objects.c.kind == kind)
                               .values(**values))
        return served

    def remove(self, kind: str, object_id: str) -> None:
        """Delete one object."""
        with self.engine.begin() as connection:
            connection.execute(delete(objects).where(objects.c.id == object_id, objects.c.kind == kind))

    def get(self, kind: str, object_id: str) -> dict[str, Any] | None:
        """One object as a row dict with its parsed `body` and `targets`, or None."""
        with self.engine.connect() as connection:
            row = connection.execute(select(objects).where(objects.c.id == object_id, objects.c.kind == kind)).first()
        return _row(row) if row else None

    def query(self, kind: str, *, client_ids: Iterable[str] | None = None, program_id: str | None = None,
              event_id: str | None = None, ven_id: str | None = None, name: str | None = None,
              targets: list[str] | None = None, visible=None, skip: int = 0, limit: int = 50) -> list[dict]:
        """Objects of `kind` matching every given filter, in creation order, `skip`ped and `limit`ed.
        `visible` (row -> bool) is the caller's privacy rule, applied before paging."""
        statement = select(objects).where(objects.c.kind == kind).order_by(objects.c.seq)
        if client_ids is not None:
            statement = statement.where(objects.c.client_id.in_(list(client_ids)))
        for column, value in ((objects.c.program_id, program_id), (objects.c.event_id, event_id),
                              (objects.c.ven_id, ven_id), (objects.c.name, name)):
            if value is not None:
                statement = statement.where(column == value)
        wanted = set(targets or [])
        found: list[dict] = []
        seen = 0
        with self.engine.connect() as connection:
            for raw in connection.execute(statement):
                row = _row(raw)
                if wanted and not wanted <= set(row["targets"]):
                    continue
                if visible is not None and not visible(row):
                    continue
                if seen >= skip:
                    found.append(row)
                    if len(found) >= limit:
                        break
                seen += 1
        return found

    def count_of(self, client_id: str) -> int:
        """How many objects `client_id` owns."""
        with self.engine.connect() as connection:
            return int(connection.execute(select(func.count()).select_from(objects)
                                          .where(objects.c.client_id == client_id)).scalar_one())

    # market links -------------------------------------------------------------------------------

    def link_request(self, event_id: str, request_id: int, buyer: str) -> None:
        """Record that `event_id` opened FlexMarket request `request_id` from `buyer`."""
        with self.engine.begin() as connection:
            connection.execute(insert(event_requests).values(event_id=event_id, request_id=request_id, buyer=buyer))

    def request_of(self, event_id: str) -> dict[str, Any] | None:
        """The request link of an event, or None."""
        with self.engine.connect() as connection:
            row = connection.execute(select(event_requests).where(event_requests.c.event_id == event_id)).first()
        return dict(row._mapping) if row else None

    def linked_requests(self) -> list[dict[str, Any]]:
        """Every event's request link."""
        with self.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(select(event_requests))]

    def set_result(self, event_id: str, report_id: str, result: dict[str, Any]) -> None:
        """Remember the result report of an event's request and the result it last showed."""
        with self.engine.begin() as connection:
            connection.execute(update(event_requests).where(event_requests.c.event_id == event_id)
                               .values(result_report_id=report_id, result=json.dumps(result, sort_keys=True)))

    def bind_site(self, resource_id: str, site: str) -> None:
        """Bind a resource to a site key."""
        with self.engine.begin() as connection:
            connection.execute(insert(resource_sites).values(resource_id=resource_id, site=site))

    def unbind_site(self, resource_id: str) -> None:
        """Release a resource's site key."""
        with self.engine.begin() as connection:
            connection.execute(delete(resource_sites).where(resource_sites.c.resource_id == resource_id))

    def site_of(self, resource_id: str) -> str | None:
        """The site bound to a resource, or None."""
        with self.engine.connect() as connection:
            return connection.execute(select(resource_sites.c.site)
                                      .where(resource_sites.c.resource_id == resource_id)).scalar_one_or_none()

    def bound_sites(self) -> set[str]:
        """Every site bound to a resource."""
        with self.engine.connect() as connection:
            return set(connection.execute(select(resource_sites.c.site)).scalars())

    def next_sequences(self, site: str, count: int) -> int:
        """Reserve `count` MeterBatch sequences of `site`; returns the first."""
        with self.engine.begin() as connection:
            current = connection.execute(select(site_sequences.c.next_sequence)
                                         .where(site_sequences.c.site == site)).scalar_one_or_none()
            if current is None:
                connection.execute(insert(site_sequences).values(site=site, next_sequence=count))
                return 0
            connection.execute(update(site_sequences).where(site_sequences.c.site == site)
                               .values(next_sequence=current + count))
            return int(current)


def _row(raw: Any) -> dict[str, Any]:
    row = dict(raw._mapping)
    row["body"] = json.loads(row["body"])
    row["targets"] = json.loads(row["targets"] or "[]")
    return row
