"""The steps every object route shares: read with the privacy rule, find an object the caller may
change, store and notify.

The rule: a caller never learns of an object it may not read (404, as for an unknown id); it may
change only what vtn.deps.may_write allows (403 otherwise); every create, update and delete is
notified to the subscriptions that asked (vtn.notify); a client owns at most
`max_objects_per_client` objects (409 beyond).
"""

from __future__ import annotations

from typing import Any

from vtn.deps import Page, VtnContext, may_read, may_write, reader
from vtn.problems import VtnProblem, forbidden, not_found
from vtn.tokens import Grant

LABELS = {"PROGRAM": "program", "EVENT": "event", "REPORT": "report", "VEN": "ven", "RESOURCE": "resource",
          "SUBSCRIPTION": "subscription"}


def list_bodies(context: VtnContext, grant: Grant, kind: str, page: Page, targets: list[str] | None = None,
                **filters: Any) -> list[dict[str, Any]]:
    """The objects of `kind` the caller may read, filtered and paged, as served."""
    client_ids, predicate = reader(context, grant, kind)
    rows = context.store.query(kind, client_ids=client_ids, targets=targets, visible=predicate, skip=page.skip,
                               limit=page.limit, **filters)
    return [row["body"] for row in rows]


def readable(context: VtnContext, grant: Grant, kind: str, object_id: str) -> dict[str, Any]:
    """The stored object, or 404 when it is unknown or hidden from the caller."""
    if len(object_id) > 128:
        raise not_found(LABELS[kind])
    row = context.store.get(kind, object_id)
    if row is None or not may_read(context, grant, kind, row):
        raise not_found(f"{LABELS[kind]} {object_id}")
    return row


def writable(context: VtnContext, grant: Grant, kind: str, object_id: str) -> dict[str, Any]:
    """The stored object if the caller may change it: 404 when it cannot see it, 403 when it may not write."""
    row = readable(context, grant, kind, object_id)
    if not may_write(grant, kind, row):
        raise forbidden(f"{LABELS[kind]} {object_id} belongs to another client")
    return row


def check_quota(context: VtnContext, client_id: str) -> None:
    """409 when `client_id` already owns the most objects a client may."""
    if context.store.count_of(client_id) >= context.settings.max_objects_per_client:
        raise VtnProblem(409, "Conflict", f"client {client_id} has reached its limit of "
                                          f"{context.settings.max_objects_per_client} objects")


def notify(context: VtnContext, kind: str, operation: str, object_id: str) -> None:
    """Notify the subscriptions of a stored object's create or update."""
    row = context.store.get(kind, object_id)
    if row is not None:
        context.notifier.changed(kind, operation, row)


def delete(context: VtnContext, kind: str, row: dict[str, Any]) -> dict[str, Any]:
    """Delete a stored object, notify, and return what it was (the spec answers the deleted object)."""
    context.store.remove(kind, row["id"])
    context.notifier.changed(kind, "DELETE", row)
    return row["body"]
