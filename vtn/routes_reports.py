"""`/reports`: VENs post usage reports, the facade posts each request's result (vtn.results).

The rule: a VEN reports on an event it may read, and only the resources of its own VENs that are
bound to a site are turned into signed meter batches and posted to the oracles (vtn.sites); the
stored report carries what became of them as `negawattDelivery`. A report on a resource name the
client does not own is refused (400), so a VEN cannot speak for another's resources. BL clients read
every report (read_all); the facade's result reports cannot be changed by any client.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query

from vtn import crud
from vtn.deps import CallerGrant, Context, Pagination, VtnContext, require
from vtn.models import ReportIn, wire
from vtn.problems import bad_request
from vtn.sites import SiteError
from vtn.tokens import Grant

router = APIRouter(tags=["reports"])
KIND = "REPORT"


def _deliver(context: VtnContext, grant: Grant, report: ReportIn) -> dict:
    mine = {row["name"]: row for row in context.store.query("RESOURCE", client_ids=[grant.client_id], limit=10_000)}
    units = None
    for descriptor in report.payload_descriptors or []:
        if descriptor.payload_type == "USAGE" and descriptor.units:
            units = descriptor.units
    planned = []
    for resource in report.resources:
        row = mine.get(resource.resource_name)
        if row is None:
            raise bad_request(f"resource {resource.resource_name!r} is not one of this client's resources")
        site = context.store.site_of(row["id"])
        if site is None:
            continue
        try:
            planned.append((site, context.sites.batches_of(site, resource, units)))
        except SiteError as error:
            raise bad_request(str(error)) from None
    total: dict = {"batches": 0, "readings": 0, "accepted": {}, "refused": {}}
    for site, batches in planned:
        delivery = context.sites.deliver(site, batches).as_json()
        total["batches"] += delivery["batches"]
        total["readings"] += delivery["readings"]
        for url, count in delivery["accepted"].items():
            total["accepted"][url] = total["accepted"].get(url, 0) + count
        for url, codes in delivery["refused"].items():
            total["refused"].setdefault(url, []).extend(codes[:20])
    return total


def _body(grant: Grant, report: ReportIn, delivery: dict, program_id: str | None) -> dict:
    body = {"objectType": KIND, **wire(report), "clientID": grant.client_id, "negawattDelivery": delivery}
    if program_id:
        body["programID"] = program_id
    return body


@router.get("/reports")
def search_reports(context: Context, grant: CallerGrant, page: Pagination,
                   programID: Annotated[str | None, Query(max_length=128)] = None,
                   eventID: Annotated[str | None, Query(max_length=128)] = None,
                   clientName: Annotated[str | None, Query(max_length=128)] = None) -> list[dict]:
    """The reports the caller may read."""
    require(grant, "read_all", "read_ven_objects")
    rows = crud.list_bodies(context, grant, KIND, page, None, program_id=programID, event_id=eventID)
    return [body for body in rows if clientName is None or body.get("clientName") == clientName]


@router.post("/reports", status_code=201)
def create_report(context: Context, grant: CallerGrant, report: Annotated[ReportIn, Body()]) -> dict:
    """Store a report; its usage of bound resources goes to the oracles as signed meter batches."""
    require(grant, "write_reports")
    crud.check_quota(context, grant.client_id)
    event = crud.readable(context, grant, "EVENT", report.event_id) if report.event_id else None
    delivery = _deliver(context, grant, report)
    program_id = event["program_id"] if event else None
    served = context.store.create(KIND, grant.client_id, _body(grant, report, delivery, program_id),
                                  program_id=program_id, event_id=report.event_id, name=report.report_name)
    crud.notify(context, KIND, "POST", served["id"])
    return served


@router.get("/reports/{reportID}")
def get_report(context: Context, grant: CallerGrant, reportID: str) -> dict:
    """One report."""
    require(grant, "read_all", "read_ven_objects")
    return crud.readable(context, grant, KIND, reportID)["body"]


@router.put("/reports/{reportID}")
def update_report(context: Context, grant: CallerGrant, reportID: str, report: Annotated[ReportIn, Body()]) -> dict:
    """Replace a report; its usage is delivered again (the oracles refuse intervals they already have)."""
    require(grant, "write_reports")
    crud.writable(context, grant, KIND, reportID)
    event = crud.readable(context, grant, "EVENT", report.event_id)
    delivery = _deliver(context, grant, report)
    served = context.store.replace(KIND, reportID, _body(grant, report, delivery, event["program_id"]),
                                   program_id=event["program_id"], event_id=report.event_id, name=report.report_name)
    crud.notify(context, KIND, "PUT", reportID)
    return served


@router.delete("/reports/{reportID}")
def delete_report(context: Context, grant: CallerGrant, reportID: str) -> dict:
    """Delete a report (what reached the oracles stays there)."""
    require(grant, "write_reports")
    return crud.delete(context, KIND, crud.writable(context, grant, KIND, reportID))
