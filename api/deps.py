"""FastAPI dependencies: how a route reaches the app's state (`app.state.context`, an ApiContext).

Routes declare what they need as `Annotated[..., Depends(...)]` parameters (the aliases below), as
the FastAPI full-stack template does, so no route module imports api.app. The dependencies are
`async def` so FastAPI resolves them on the event loop, without a thread-pool hop per request.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPBearer

from api.context import ApiContext
from api.problems import ApiProblem, Reason
from api.reads import Reads
from api.siwe_auth import SiweAuth


async def get_context(request: Request) -> ApiContext:
    """The app's context, set by api.app.create_app."""
    return request.app.state.context


Context = Annotated[ApiContext, Depends(get_context)]


async def get_reads(context: Context) -> Reads:
    """The read queries on the mirror."""
    return context.reads


async def get_auth(context: Context) -> SiweAuth:
    """SIWE sign-in and sessions."""
    return context.auth


ReadsDep = Annotated[Reads, Depends(get_reads)]
AuthDep = Annotated[SiweAuth, Depends(get_auth)]


def bearer(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header; 401 problem without one."""
    if not authorization or not authorization.startswith("Bearer ") or len(authorization) > 200:
        raise ApiProblem(401, Reason.UNAUTHENTICATED, "Sign in first",
                         "send Authorization: Bearer <token> from POST /v1/auth/login",
                         headers={"WWW-Authenticate": "Bearer"})
    return authorization[len("Bearer "):].strip()


# Declares the bearer scheme in the OpenAPI document; the header itself is checked by `bearer`, so a
# missing or malformed one is this API's 401 problem rather than FastAPI's plain 403.
_BEARER_SCHEME = HTTPBearer(auto_error=False, description="a session token from POST /v1/auth/login")


async def get_token(request: Request, _scheme: Annotated[object, Depends(_BEARER_SCHEME)]) -> str:
    """The session token the request carries (401 problem if none)."""
    return bearer(request.headers.get("authorization"))


async def get_session_address(auth: AuthDep, token: Annotated[str, Depends(get_token)]) -> str:
    """The address signed in with the request's session (401 problem if the session is unknown or expired)."""
    address = auth.address_of(token)
    if address is None:
        raise ApiProblem(401, Reason.UNAUTHENTICATED, "Session expired or unknown", "sign in again",
                         headers={"WWW-Authenticate": "Bearer"})
    return address


Token = Annotated[str, Depends(get_token)]
SessionAddress = Annotated[str, Depends(get_session_address)]
