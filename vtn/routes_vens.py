"""`/vens` and `/resources` (OpenADR 3.1.0 serves resources at the top level, with `venID`).

The rule: a VEN client creates its own VENs (its client id is taken from the token; targets it
sends are ignored, as the spec allows) and the resources of its VENs; a BL client may create either
for a VEN client, naming its `clientID` and assigning targets. VEN names are unique, and resource
names are unique within their VEN. A new resource is bound to a site key the facade holds
(vtn.sites), shown as its NEGAWATT_SITE attribute; deleting the resource releases the site.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query

from vtn import crud
from vtn.clients import Role
from vtn.deps import CallerGrant, Context, Pagination, TargetFilter, VtnContext, require
from vtn.models import ResourceIn, VenIn, wire
from vtn.problems import VtnProblem, bad_request
from vtn.sites import SITE_ATTRIBUTE, SiteError
from vtn.tokens import Grant

router = APIRouter(tags=["vens"])
NameQuery = Annotated[str | None, Query(max_length=128)]


def _owner(context: VtnContext, grant: Grant, client_id: str | None) -> str:
    if grant.role is not Role.BL:
        return grant.client_id
    if not client_id:
        raise bad_request("a BL client creating a VEN or resource must name the VEN client's clientID")
    client = context.registry.clients.get(client_id)
    if client is None or client.role is not Role.VEN:
        raise bad_request(f"clientID {client_id!r} is not a VEN client of this facade")
    return client_id


def _targets(grant: Grant, targets: list[str] | None) -> list[str]:
    return list(targets or []) if grant.role is Role.BL else []


def _ven_body(ven: VenIn, owner: str, targets: list[str]) -> dict:
    body = {**wire(ven), "objectType": "VEN", "clientID": owner}
    body["targets"] = targets
    return body


@router.get("/vens")
def search_vens(context: Context, grant: CallerGrant, page: Pagination, targets: TargetFilter,
                venName: NameQuery = None) -> list[dict]:
    """The VENs the caller may read."""
    require(grant, "read_all", "read_ven_objects")
    return crud.list_bodies(context, grant, "VEN", page, targets, name=venName)


@router.post("/vens", status_code=201)
def create_ven(context: Context, grant: CallerGrant, ven: Annotated[VenIn, Body()]) -> dict:
    """Register a VEN (write_vens)."""
    require(grant, "write_vens")
    crud.check_quota(context, grant.client_id)
    owner = _owner(context, grant, ven.client_id)
    if context.store.query("VEN", name=ven.ven_name, limit=1):
        raise VtnProblem(409, "Conflict", f"a VEN named {ven.ven_name!r} exists")
    targets = _targets(grant, ven.targets)
    served = context.store.create("VEN", owner, _ven_body(ven, owner, targets), name=ven.ven_name, targets=targets)
    crud.notify(context, "VEN", "POST", served["id"])
    return served


@router.get("/vens/{venID}")
def get_ven(context: Context, grant: CallerGrant, venID: str) -> dict:
    """One VEN."""
    require(grant, "read_all", "read_ven_objects")
    return crud.readable(context, grant, "VEN", venID)["body"]


@router.put("/vens/{venID}")
def update_ven(context: Context, grant: CallerGrant, venID: str, ven: Annotated[VenIn, Body()]) -> dict:
    """Replace a VEN (a VEN client keeps the targets a BL client assigned)."""
    require(grant, "write_vens")
    row = crud.writable(context, grant, "VEN", venID)
    targets = _targets(grant, ven.targets) if grant.role is Role.BL else row["targets"]
    clash = context.store.query("VEN", name=ven.ven_name, limit=2)
    if any(other["id"] != venID for other in clash):
        raise VtnProblem(409, "Conflict", f"a VEN named {ven.ven_name!r} exists")
    served = context.store.replace("VEN", venID, _ven_body(ven, row["client_id"], targets), name=ven.ven_name,
                                   targets=targets)
    crud.notify(context, "VEN", "PUT", venID)
    return served


@router.delete("/vens/{venID}")
def delete_ven(context: Context, grant: CallerGrant, venID: str) -> dict:
    """Delete a VEN and its resources (their sites are released)."""
    require(grant, "write_vens")
    row = crud.writable(context, grant, "VEN", venID)
    for resource in context.store.query("RESOURCE", ven_id=venID, limit=10_000):
        context.store.unbind_site(resource["id"])
        crud.delete(context, "RESOURCE", resource)
    return crud.delete(context, "VEN", row)


# -------------------------------------------------------------------------------------------- resources


def _resource_body(resource: ResourceIn, owner: str, targets: list[str], site: str | None) -> dict:
    body = {**wire(resource), "objectType": "RESOURCE", "clientID": owner, "targets": targets}
    attributes = [a for a in body.get("attributes", []) if a["type"] != SITE_ATTRIBUTE]
    if site:
        attributes.append({"type": SITE_ATTRIBUTE, "values": [site]})
    body["attributes"] = attributes
    return body


@router.get("/resources")
def search_resources(context: Context, grant: CallerGrant, page: Pagination, targets: TargetFilter,
                     venID: NameQuery = None, resourceName: NameQuery = None) -> list[dict]:
    """The resources the caller may read."""
    require(grant, "read_all", "read_ven_objects")
    return crud.list_bodies(context, grant, "RESOURCE", page, targets, ven_id=venID, name=resourceName)


@router.post("/resources", status_code=201)
def create_resource(context: Context, grant: CallerGrant, resource: Annotated[ResourceIn, Body()]) -> dict:
    """Register a resource of a VEN and bind it to a site."""
    require(grant, "write_vens")
    crud.check_quota(context, grant.client_id)
    ven = crud.writable(context, grant, "VEN", resource.ven_id)
    owner = ven["client_id"]
    if context.store.query("RESOURCE", ven_id=resource.ven_id, name=resource.resource_name, limit=1):
        raise VtnProblem(409, "Conflict", f"VEN {resource.ven_id} has a resource named {resource.resource_name!r}")
    try:
        site = context.sites.choose_site([a.model_dump() for a in resource.attributes or []])
    except SiteError as error:
        raise bad_request(str(error)) from None
    targets = _targets(grant, resource.targets)
    served = context.store.create("RESOURCE", owner, _resource_body(resource, owner, targets, site),
                                  ven_id=resource.ven_id, name=resource.resource_name, targets=targets)
    if site:
        context.store.bind_site(served["id"], site)
    crud.notify(context, "RESOURCE", "POST", served["id"])
    return served


@router.get("/resources/{resourceID}")
def get_resource(context: Context, grant: CallerGrant, resourceID: str) -> dict:
    """One resource."""
    require(grant, "read_all", "read_ven_objects")
    return crud.readable(context, grant, "RESOURCE", resourceID)["body"]


@router.put("/resources/{resourceID}")
def update_resource(context: Context, grant: CallerGrant, resourceID: str,
                    resource: Annotated[ResourceIn, Body()]) -> dict:
    """Replace a resource (its VEN and its site stay)."""
    require(grant, "write_vens")
    row = crud.writable(context, grant, "RESOURCE", resourceID)
    if resource.ven_id != row["ven_id"]:
        raise VtnProblem(409, "Conflict", "a resource cannot move to another VEN")
    targets = _targets(grant, resource.targets) if grant.role is Role.BL else row["targets"]
    served = context.store.replace("RESOURCE", resourceID,
                                   _resource_body(resource, row["client_id"], targets,
                                                  context.store.site_of(resourceID)),
                                   ven_id=row["ven_id"], name=resource.resource_name, targets=targets)
    crud.notify(context, "RESOURCE", "PUT", resourceID)
    return served


@router.delete("/resources/{resourceID}")
def delete_resource(context: Context, grant: CallerGrant, resourceID: str) -> dict:
    """Delete a resource and release its site."""
    require(grant, "write_vens")
    row = crud.writable(context, grant, "RESOURCE", resourceID)
    context.store.unbind_site(resourceID)
    return crud.delete(context, "RESOURCE", row)
