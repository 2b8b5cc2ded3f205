"""Identity: SIWE (EIP-4361) sign-in, and the owner-written off-chain device profile.

A module-level router (mounted by api.app); the app state and the session come in through api.deps."""

from __future__ import annotations

import time

from fastapi import APIRouter, Path
from sqlalchemy import delete, insert, update
from starlette.responses import Response

from api import params
from api.deps import AuthDep, Context, SessionAddress, Token
from api.models import api_metadata
from api.openapi import problem_responses
from api.problems import ApiProblem, Reason
from api.responses import json_response
from api.schemas import ADDRESS_PATTERN, DeviceOut, Nonce, ProfileIn, SessionOut, SiweLogin

PROFILES = api_metadata.tables["device_profiles"]
DeviceAddress = Path(..., max_length=42, json_schema_extra={"pattern": ADDRESS_PATTERN},
                     description="the device's address (EIP-55 checksum if mixed case)")

router = APIRouter(prefix="/v1", responses=problem_responses(429), tags=["identity"])


@router.get("/auth/nonce", response_model=Nonce)
def nonce(auth: AuthDep):
    """A single-use nonce to put in the EIP-4361 message."""
    value, expires = auth.new_nonce()
    return json_response({"nonce": value, "expiresAt": expires}, headers={"Cache-Control": "no-store"})


@router.post("/auth/login", response_model=SessionOut, responses=problem_responses(400, 401, 413))
def login(auth: AuthDep, body: SiweLogin):
    """Exchange a signed EIP-4361 message for a session token. The message must name one of this
    API's configured domains and its chain, carry a nonce from `/v1/auth/nonce`, and be at most
    2,048 characters in EIP-4361's exact line layout; each refusal's `code` and `detail` say why."""
    session = auth.login(body.message, body.signature)
    return json_response({"token": session.token, "address": session.address, "expiresAt": session.expires_at})


@router.post("/auth/logout", status_code=204, responses=problem_responses(401))
def logout(auth: AuthDep, token: Token):
    """End the session; 401 if the token names no live session (so a made-up token is never "accepted")."""
    if not auth.logout(token):
        raise ApiProblem(401, Reason.UNAUTHENTICATED, "Session expired or unknown",
                         "no session has this token (already signed out, expired, or never issued)",
                         headers={"WWW-Authenticate": "Bearer"})
    return Response(status_code=204)


@router.put("/devices/{address}/profile", response_model=DeviceOut,
            responses=problem_responses(400, 401, 403, 404, 413))
def put_profile(ctx: Context, signer: SessionAddress, body: ProfileIn, address: str = DeviceAddress):
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


@router.delete("/devices/{address}/profile", status_code=204, responses=problem_responses(400, 401, 403))
def delete_profile(ctx: Context, signer: SessionAddress, address: str = DeviceAddress):
    """Remove a device's off-chain profile (owner only)."""
    device = params.address(address, "address")
    owner = ctx.reads.device_owner(device)
    if owner != signer:
        raise ApiProblem(403, Reason.NOT_OWNER, "Not the owner", f"{device} is not owned by {signer}")
    with ctx.engine.begin() as connection:
        connection.execute(delete(PROFILES).where(PROFILES.c.device == device))
    return Response(status_code=204)
