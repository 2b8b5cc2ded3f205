"""`GET /auth/server` (where to get a token) and `POST /auth/token` (OAuth2 client credentials).

The token endpoint takes `grant_type=client_credentials` as application/x-www-form-urlencoded, with
the client's id and secret in HTTP Basic authentication or as `client_id`/`client_secret` form
fields (RFC 6749 §2.3.1), and an optional space-separated `scope`. It answers the RFC's JSON
(`access_token`, `token_type` Bearer, `expires_in`, `scope`); a refusal is the RFC's error JSON
(`invalid_client` 401, `unsupported_grant_type`/`invalid_request`/`invalid_scope` 400), since OAuth
clients parse that, not a problem document.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qs, unquote_plus

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from vtn.clients import ROLE_SCOPES
from vtn.deps import Context

router = APIRouter(tags=["auth"])
MAX_FORM_BYTES = 4_096


@router.get("/auth/server")
def auth_server(context: Context) -> dict:
    """Where clients get tokens (OpenADR 3.1 discovery)."""
    return {"tokenURL": f"{context.settings.base_url()}/auth/token"}


def _oauth_error(status: int, error: str, description: str) -> JSONResponse:
    headers = {"Cache-Control": "no-store"}
    if status == 401:
        headers["WWW-Authenticate"] = 'Basic realm="negawatt-vtn"'
    return JSONResponse({"error": error, "error_description": description}, status_code=status, headers=headers)


def _basic(header: str) -> tuple[str, str] | None:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    return (unquote_plus(client_id), unquote_plus(secret)) if sep else None


@router.post("/auth/token")
async def token(request: Request, context: Context) -> JSONResponse:
    """Issue a bearer token to a known client with its secret."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        return _oauth_error(400, "invalid_request", "the form is too large")
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return _oauth_error(400, "invalid_request", "send the form as application/x-www-form-urlencoded")
    try:
        form = {k: v[0] for k, v in parse_qs(body.decode(), max_num_fields=10, strict_parsing=False).items()}
    except (UnicodeDecodeError, ValueError):
        return _oauth_error(400, "invalid_request", "the form cannot be read")
    if form.get("grant_type") != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", "only client_credentials is supported")
    credentials = _basic(request.headers.get("authorization", "")) or (form.get("client_id"), form.get("client_secret"))
    client_id, secret = credentials
    client = context.registry.clients.get(client_id or "")
    if client is None or not secret or len(secret) > 512 or not client.check_secret(secret):
        return _oauth_error(401, "invalid_client", "unknown client or wrong secret")
    allowed = ROLE_SCOPES[client.role]
    asked = set((form.get("scope") or "").split())
    if asked and not asked <= allowed:
        return _oauth_error(400, "invalid_scope", f"a {client.role.value} client may have {' '.join(sorted(allowed))}")
    scopes = frozenset(asked or allowed)
    issued = context.tokens.issue(client.client_id, client.role, scopes)
    return JSONResponse({"access_token": issued, "token_type": "Bearer", "expires_in": context.tokens.ttl_seconds,
                         "scope": " ".join(sorted(scopes))}, headers={"Cache-Control": "no-store"})
