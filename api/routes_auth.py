"""Identity: SIWE (EIP-4361) sign-in, and the owner-written off-chain device profile."""

from __future__ import annotations

import time

from fastapi import FastAPI, Header, Path, Request
from sqlalchemy import delete, insert, update
from starlette.responses import Response

from api import params
from api.app import ApiContext, json_response
from api.models import api_metadata
from api.problems import ApiProblem
from api.schemas import DeviceOut, Nonce, Problem, ProfileIn, SessionOut, SiweLogin

PROFILES = api_metadata.tables["device_profiles"]
AUTH_ERRORS = {400: {"model": Problem}, 401: {"model": Problem}, 403: {"model": Problem}, 404: {"model": Problem},
               429: {"model": Problem}}


def _bearer(authorization: str | None) -> str:
    if not authorization or not authorization.startswith("Bearer ") or len(authorization) > 200:
        raise ApiProblem(401, "unauthenticated", "Sign in first",
                         "send Authorization: Bearer <token> from POST /v1/auth/login",
                         headers={"WWW-Authenticate": "Bearer"})
    return authorization[len("Bearer "):].strip()


def add_auth_routes(app: FastAPI, ctx: ApiContext) -> None:
    """Mount the SIWE and profile routes."""
    auth = ctx.auth

    def session_address(authorization: str | None) -> str:
        address = auth.address_of(_bearer(authorization))
        if address is None:
            raise ApiProblem(401, "unauthenticated", "Session expired or unknown", "sign in again",
                             headers={"WWW-Authenticate": "Bearer"})
        return address

    @app.get("/v1/auth/nonce", response_model=Nonce, responses=AUTH_ERRORS, tags=["identity"])
    def nonce():
        """A single-use nonce to put in the EIP-4361 message."""
        value, expires = auth.new_nonce()
        return json_response({"nonce": value, "expiresAt": expires}, headers={"Cache-Control": "no-store"})

    @app.post("/v1/auth/login", response_model=SessionOut, responses=AUTH_ERRORS, tags=["identity"])
    def login(body: SiweLogin, request: Request):
        """Exchange a signed EIP-4361 message for a session token."""
        session = auth.login(body.message, body.signature, request.headers.get("host"))
        return json_response({"token": session.token, "address": session.address, "expiresAt": session.expires_at})

    @app.post("/v1/auth/logout", status_code=204, responses=AUTH_ERRORS, tags=["identity"])
    def logout(authorization: str | None = Header(None)):
        """End the session."""
        auth.logout(_bearer(authorization))
        return Response(status_code=204)

    @app.put("/v1/devices/{address}/profile", response_model=DeviceOut, responses=AUTH_ERRORS, tags=["identity"])
    def put_profile(body: ProfileIn, address: str = Path(..., max_length=42),
                    authorization: str | None = Header(None)):
        """Write a device's name and location label; only its current on-chain owner may."""
        signer = session_address(authorization)
        device = params.address(address, "address")
        owner = ctx.reads.device_owner(device)
        if owner is None:
            raise ApiProblem(404, "unknown_device", "Unknown device", f"{device} is not registered")
        if owner != signer:
            raise ApiProblem(403, "not_owner", "Not the owner", f"{device} belongs to {owner}, not {signer}")
        values = {"name": body.name, "location_label": body.locationLabel, "written_by": signer,
                  "updated_at": int(time.time())}
        with ctx.engine.begin() as connection:
            if connection.execute(update(PROFILES).where(PROFILES.c.device == device).values(**values)).rowcount == 0:
                connection.execute(insert(PROFILES).values(device=device, **values))
        ctx.reads.cache.bump()
        return json_response(ctx.reads.device(device))

    @app.delete("/v1/devices/{address}/profile", status_code=204, responses=AUTH_ERRORS, tags=["identity"])
    def delete_profile(address: str = Path(..., max_length=42), authorization: str | None = Header(None)):
        """Remove a device's off-chain profile (owner only)."""
        signer = session_address(authorization)
        device = params.address(address, "address")
        owner = ctx.reads.device_owner(device)
        if owner != signer:
            raise ApiProblem(403, "not_owner", "Not the owner", f"{device} is not owned by {signer}")
        with ctx.engine.begin() as connection:
            connection.execute(delete(PROFILES).where(PROFILES.c.device == device))
        return Response(status_code=204)
