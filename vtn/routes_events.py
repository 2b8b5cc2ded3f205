"""`/events`: a BL client's event becomes a FlexMarket request escrowed from its buyer (vtn.market).

The rule: the event is checked and its request opened before the event is stored, so a refused
event (window in the past, no budget, unknown programme, unsupported payload) is a problem and
nothing is on chain or in the store. A PUT may change what does not touch the request (name,
priority, targets, descriptors); changing the window or the reduction is refused (409: delete the
event and create another). DELETE cancels the request while FlexMarket allows it (open, not started,
not allocated); after that the event stays, and its result report says why.
"""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Query

from vtn import crud
from vtn.deps import CallerGrant, Context, Pagination, TargetFilter, VtnContext, require
from vtn.market import MarketError, event_order, program_terms
from vtn.models import EventIn, wire
from vtn.problems import VtnProblem, bad_request
from vtn.tokens import Grant

log = logging.getLogger(__name__)
router = APIRouter(tags=["events"])
KIND = "EVENT"


def _program(context: VtnContext, grant: Grant, program_id: str) -> dict:
    row = context.store.get("PROGRAM", program_id)
    if row is None or row["client_id"] != grant.client_id:
        raise bad_request(f"unknown program {program_id}: create it first (events go into your own programs)")
    return row


def _order(context: VtnContext, program: dict, event: EventIn):
    try:
        terms = program_terms(program["body"].get("attributes"), context.market.decimals)
        return event_order(event, terms)
    except MarketError as error:
        raise VtnProblem(error.status, "Bad Request" if error.status == 400 else "Conflict", str(error)) from None


@router.get("/events")
def search_events(context: Context, grant: CallerGrant, page: Pagination, targets: TargetFilter,
                  programID: Annotated[str | None, Query(max_length=128)] = None) -> list[dict]:
    """The events the caller may read."""
    require(grant, "read_all", "read_targets")
    return crud.list_bodies(context, grant, KIND, page, targets, program_id=programID)


@router.post("/events", status_code=201)
def create_event(context: Context, grant: CallerGrant, event: Annotated[EventIn, Body()]) -> dict:
    """Create an event and open its request (write_events)."""
    require(grant, "write_events")
    crud.check_quota(context, grant.client_id)
    program = _program(context, grant, event.program_id)
    client = context.registry.clients[grant.client_id]
    if context.market is None or client.buyer_key is None:
        raise VtnProblem(409, "Conflict", "this facade has no market or no buyer key for this client")
    order = _order(context, program, event)
    try:
        request_id = context.market.open(client.buyer_key, order)
    except MarketError as error:
        raise VtnProblem(error.status, "Bad Request" if error.status == 400 else "Conflict", str(error)) from None
    event_id = uuid.uuid4().hex[:20]
    served = context.store.create(KIND, grant.client_id, {"objectType": KIND, **wire(event)}, object_id=event_id,
                                  program_id=event.program_id, name=event.event_name, targets=event.targets)
    context.store.link_request(event_id, request_id, client.buyer)
    crud.notify(context, KIND, "POST", event_id)
    link = context.store.request_of(event_id)
    try:
        context.results.refresh(link)
    except Exception:  # the result follows with the next refresh
        log.exception("first result of event %s failed", event_id)
    return served


@router.get("/events/{eventID}")
def get_event(context: Context, grant: CallerGrant, eventID: str) -> dict:
    """One event."""
    require(grant, "read_all", "read_targets")
    return crud.readable(context, grant, KIND, eventID)["body"]


@router.put("/events/{eventID}")
def update_event(context: Context, grant: CallerGrant, eventID: str, event: Annotated[EventIn, Body()]) -> dict:
    """Change what does not touch the event's request."""
    require(grant, "write_events")
    row = crud.writable(context, grant, KIND, eventID)
    if event.program_id != row["program_id"]:
        raise VtnProblem(409, "Conflict", "an event cannot move to another program: delete it and create another")
    program = _program(context, grant, event.program_id)
    if context.market is not None and context.store.request_of(eventID):
        before = _order(context, program, EventIn.model_validate(row["body"]))
        if _order(context, program, event) != before:
            raise VtnProblem(409, "Conflict", "the window or the reduction changed: the request on chain cannot "
                                              "change; delete the event (which cancels it) and create another")
    served = context.store.replace(KIND, eventID, {"objectType": KIND, **wire(event)}, program_id=event.program_id,
                                   name=event.event_name, targets=event.targets)
    crud.notify(context, KIND, "PUT", eventID)
    return served


@router.delete("/events/{eventID}")
def delete_event(context: Context, grant: CallerGrant, eventID: str) -> dict:
    """Delete an event, cancelling its request while that is allowed."""
    require(grant, "write_events")
    row = crud.writable(context, grant, KIND, eventID)
    link = context.store.request_of(eventID)
    if link is not None and context.market is not None:
        request = context.market.request(link["request_id"])
        if request is not None and request["status"] == "open":
            client = context.registry.clients[grant.client_id]
            try:
                context.market.cancel(client.buyer_key, link["request_id"])
            except MarketError as error:
                raise VtnProblem(error.status, "Conflict", str(error)) from None
            context.results.refresh(context.store.request_of(eventID))
    return crud.delete(context, KIND, row)
