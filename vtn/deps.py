"""What every route depends on: the facade's context, the caller's grant (bearer token and scopes),
the pagination and target filters, and the privacy rule.

Scopes (OpenADR 3.1.0): reading programs and events needs read_all or read_targets; reading
reports, VENs, resources and subscriptions read_all or read_ven_objects; writing needs
write_programs, write_events, write_reports, write_subscriptions, or write_vens (VENs and resources).

Privacy by client id: a BL client (read_all) reads everything and writes the programs and events it
created; a VEN client reads and writes only its own VENs, resources, reports and subscriptions, and
reads a program or event only when it has no targets or one of its targets is one of the VEN
client's: the names and BL-assigned targets of its VENs and resources. An object a client may not
read is answered 404, as if it did not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Query, Request

from vtn.clients import FACADE_CLIENT_ID, Registry, Role
from vtn.problems import VtnProblem, forbidden
from vtn.tokens import Grant, TokenStore

MAX_LIMIT = 50


@dataclass
class VtnContext:
    """Everything the routes share (app.state.vtn)."""

    settings: Any
    store: Any
    registry: Registry
    tokens: TokenStore
    notifier: Any
    market: Any  # vtn.market.Market, or None when the facade runs without a chain (tests of the HTTP layer)
    sites: Any  # vtn.sites.SiteGateway
    results: Any = None  # vtn.results.Results (None without a market)


def get_context(request: Request) -> VtnContext:
    """The facade's context."""
    return request.app.state.vtn


Context = Annotated[VtnContext, Depends(get_context)]


def get_grant(request: Request, context: Context) -> Grant:
    """The caller's grant from its `Authorization: Bearer` header; 401 problem without a valid one."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    grant = context.tokens.grant(token.strip()) if scheme.lower() == "bearer" else None
    if grant is None:
        raise VtnProblem(401, "Unauthorized", "a valid bearer token is required (POST /auth/token)",
                         headers={"WWW-Authenticate": 'Bearer realm="negawatt-vtn"'})
    return grant


CallerGrant = Annotated[Grant, Depends(get_grant)]


def require(grant: Grant, *scopes: str) -> None:
    """403 unless `grant` holds one of `scopes`."""
    if not grant.scopes.intersection(scopes):
        raise forbidden(f"this operation needs the scope {' or '.join(scopes)}")


@dataclass(frozen=True)
class Page:
    """The spec's pagination: skip the first `skip` objects, return at most `limit`."""

    skip: int
    limit: int


def get_page(skip: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
             limit: Annotated[int, Query(ge=0, le=MAX_LIMIT)] = MAX_LIMIT) -> Page:
    """skip and limit from the query (limit at most 50, the spec's bound)."""
    return Page(skip, limit)


def get_targets(targets: Annotated[list[Annotated[str, Query(min_length=1, max_length=128)]] | None,
                                   Query(max_length=100)] = None) -> list[str]:
    """`targets` from the query (repeated); an object matches when it has all of them."""
    return list(targets or [])


Pagination = Annotated[Page, Depends(get_page)]
TargetFilter = Annotated[list[str], Depends(get_targets)]


def ven_client_targets(context: VtnContext, client_id: str) -> set[str]:
    """The targets a VEN client answers to: its VENs' and resources' names and assigned targets."""
    found: set[str] = set()
    for kind in ("VEN", "RESOURCE"):
        for row in context.store.query(kind, client_ids=[client_id], limit=10_000):
            found.add(row["name"])
            found.update(row["targets"])
    return found


def reader(context: VtnContext, grant: Grant, kind: str):
    """The privacy rule for `grant` reading objects of `kind`, as (client ids filter, row predicate)."""
    if grant.role is Role.BL and "read_all" in grant.scopes:
        return None, None
    if kind in ("PROGRAM", "EVENT"):
        mine = ven_client_targets(context, grant.client_id)
        return None, lambda row: not row["targets"] or bool(mine.intersection(row["targets"]))
    return [grant.client_id], None


def may_read(context: VtnContext, grant: Grant, kind: str, row: dict) -> bool:
    """Whether `grant` may read this stored object."""
    client_ids, predicate = reader(context, grant, kind)
    if client_ids is not None and row["client_id"] not in client_ids:
        return False
    return predicate is None or predicate(row)


def may_write(grant: Grant, kind: str, row: dict) -> bool:
    """Whether `grant` may change or delete this stored object: its own; a BL client also any VEN or
    resource (it provisions them); nobody the facade's own result reports."""
    if row["client_id"] == FACADE_CLIENT_ID:
        return False
    if row["client_id"] == grant.client_id:
        return True
    return grant.role is Role.BL and kind in ("VEN", "RESOURCE")
