"""Identity: SIWE (EIP-4361) sign-in, and the owner-written off-chain device profile.

A module-level router (mounted by api.app); the app state and the session come in through api.deps."""

from __future__ import annotations

import time

from fastapi import APIRouter, Path, Request
from sqlalchemy import delete, insert, update
from starlette.responses import Response

from api import params
from api.deps import AuthDep, Context, SessionAddress, Token
from api.models import api_metadata
from api.problems import ApiProblem, Reason
from api.responses import json_response
from api.schemas import DeviceOut, Nonce, Problem, ProfileIn, SessionOut, SiweLogin

PROFILES = api_metadata.tables["device_profiles"]
AUTH_ERRORS = {400: {"model": Problem}, 401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem},
               429: {"model": Problem}}

router = APIRouter(prefix="/v1", responses=AUTH_ERRORS, tags=["identity"])


@router.get("/auth/nonce", response_model=Nonce)
def nonce(auth: AuthDep):
    """A single-use nonce to put in the EIP-4361 message."""
    value, expires = auth.new_nonce()
    return json_response({"nonce": value, "expiresAt": expires}, headers={"Cache-Control": "no-store"})


@router.post("/auth/login", response_model=SessionOut)
def login(auth: AuthDep, body: SiweLogin, request: Request):
    """Exchange a signed EIP-4361 message for a session token."""
    session = auth.login(body.message, body.signature, request.headers.get("host"))
    return json_response({"token": session.token, "address": session.address, "expiresAt": session.expires_at})


@router.post("/auth/logout", status_code=204)
def logout(auth: AuthDep, token: Token):
    """End the session."""
    auth.logout(token)
    return Response(status_code=204)


@router.put("/devices/{address}/profile", response_model=DeviceOut)
def put_profile(ctx: Context, signer: SessionAddress, body: ProfileIn, address: str = Path(..., max_length=42)):
    """Write a device's name and location label; only its current on-chain owner may."""
    device = params.address(address, "address")
    owner = ctx.reads.device_owner(device)
    if owner is None:
        raise ApiProblem(404, Reason.UNKNOWN_DEVICE, "Unknown device", f"{device} is not registered")
    if owner != signer:
        raise ApiProblem(403, Reason.NOT_OWNER, "Not the owner", f"{device} belongs to {owner}, not {signer}")
    values = {"name": body.name, "location_label": body.locationLabel, "written_by": signer,
              "updated_at": int(time.time())}
    with ctx.engine.begin() as connection:
        if connection.execute(update(PROFILES).where(PROFILES.c.device == device).values(**values)).rowcount == 0:
            connection.execute(insert(PROFILES).values(device=device, **values))
    ctx.reads.cache.bump()
    return json_response(ctx.reads.device(device))


@router.delete("/devices/{address}/profile", status_code=204)
def delete_profile(ctx: Context, signer: SessionAddress, address: str = Path(..., max_length=42)):
    """Remove a device's off-chain profile (owner only)."""
    device = params.address(address, "address")
    owner = ctx.reads.device_owner(device)
    if owner != signer:
        raise ApiProblem(403, Reason.NOT_OWNER, "Not the owner", f"{device} is not owned by {signer}")
    with ctx.engine.begin() as connection:
        connection.execute(delete(PROFILES).where(PROFILES.c.device == device))
    return Response(status_code=204)
