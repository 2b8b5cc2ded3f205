"""`/programs`: a BL client's programmes, each naming a negawatt zone and a price ceiling.

A program must carry NEGAWATT_ZONE and NEGAWATT_PRICE_CEILING (vtn.market); the facade adds the
market's rules it runs under as attributes. A program with events cannot be deleted (409): delete
its events first, which cancels their requests.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body

from vtn import crud
from vtn.deps import CallerGrant, Context, Pagination, TargetFilter, VtnContext, require
from vtn.market import MarketError, program_terms
from vtn.models import ProgramIn, wire
from vtn.problems import VtnProblem, bad_request

router = APIRouter(tags=["programs"])
KIND = "PROGRAM"


def _body(context: VtnContext, program: ProgramIn) -> dict:
    body = {"objectType": KIND, **wire(program)}
    if context.market is not None:
        try:
            program_terms(body.get("attributes"), context.market.decimals)
        except MarketError as error:
            raise bad_request(str(error)) from None
        rules = context.market.rules()
        kept = [a for a in body.get("attributes", []) if a["type"] not in rules]
        body["attributes"] = kept + [{"type": name, "values": [value]} for name, value in rules.items()]
    return body


@router.get("/programs")
def search_programs(context: Context, grant: CallerGrant, page: Pagination, targets: TargetFilter) -> list[dict]:
    """The programs the caller may read."""
    require(grant, "read_all", "read_targets")
    return crud.list_bodies(context, grant, KIND, page, targets)


@router.post("/programs", status_code=201)
def create_program(context: Context, grant: CallerGrant, program: Annotated[ProgramIn, Body()]) -> dict:
    """Create a program (write_programs)."""
    require(grant, "write_programs")
    crud.check_quota(context, grant.client_id)
    if context.store.query(KIND, name=program.program_name, limit=1):
        raise VtnProblem(409, "Conflict", f"a program named {program.program_name!r} exists")
    served = context.store.create(KIND, grant.client_id, _body(context, program), name=program.program_name,
                                  targets=program.targets)
    crud.notify(context, KIND, "POST", served["id"])
    return served


@router.get("/programs/{programID}")
def get_program(context: Context, grant: CallerGrant, programID: str) -> dict:
    """One program."""
    require(grant, "read_all", "read_targets")
    return crud.readable(context, grant, KIND, programID)["body"]


@router.put("/programs/{programID}")
def update_program(context: Context, grant: CallerGrant, programID: str,
                   program: Annotated[ProgramIn, Body()]) -> dict:
    """Replace a program (its events' requests keep the terms they were opened with)."""
    require(grant, "write_programs")
    crud.writable(context, grant, KIND, programID)
    served = context.store.replace(KIND, programID, _body(context, program), name=program.program_name,
                                   targets=program.targets)
    crud.notify(context, KIND, "PUT", programID)
    return served


@router.delete("/programs/{programID}")
def delete_program(context: Context, grant: CallerGrant, programID: str) -> dict:
    """Delete a program without events."""
    require(grant, "write_programs")
    row = crud.writable(context, grant, KIND, programID)
    if context.store.query("EVENT", program_id=programID, limit=1):
        raise VtnProblem(409, "Conflict", f"program {programID} has events: delete them first")
    return crud.delete(context, KIND, row)

