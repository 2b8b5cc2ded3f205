"""The oracle apps' OpenAPI documents, true to what the apps send.

Rule: every error an oracle app answers is an `application/problem+json` Problem, and each route
declares each status it can answer with, described. FastAPI by itself would declare problems as
`application/json` and add a 422 "Validation Error" to every route with parameters, while
`oracle.ingest_api.install_problem_handlers` answers invalid parameters with a 400 problem; so
routes declare their problems with `problem_responses(...)` and `install_openapi` removes the
422 FastAPI invents and puts the Problem schema in the components.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from protocol.problems import PROBLEM_MEDIA_TYPE, Problem

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"  # documented; a mixed-case address must also carry its EIP-55 checksum
HASH_PATTERN = r"^0x[0-9a-fA-F]{64}$"
HEX_PATTERN = r"^0x(?:[0-9a-fA-F]{2})*$"

# What each status means on an oracle app (a route may narrow it in its own description).
STATUS_MEANINGS: dict[int, str] = {
    400: "invalid input (code invalid_payload, invalid_epoch, invalid_address, invalid_digest, bad_signature ...)",
    401: "the request is not signed, not fresh, or not signed by who it claims (WWW-Authenticate says how)",
    403: "the signer may not do this (not an oracle of the OracleHub, an unknown or inactive device)",
    404: "no such resource here",
    409: "conflicts with what this oracle holds or with the chain (a declined proposal, a conflicting message)",
    413: "the request body is larger than this route takes",
    415: "the request body is not application/json",
    422: "well formed but against the protocol's rules (code says which)",
    429: "too many requests; retry after Retry-After seconds",
    503: "the chain is not reachable; retry after Retry-After seconds",
}

_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "the authentication scheme proposals take",
                               "schema": {"type": "string"}, "required": True}},
    429: {"Retry-After": {"description": "seconds until a retry may pass", "required": True,
                          "schema": {"type": "string", "pattern": "^[0-9]+$"}}},
    503: {"Retry-After": {"description": "seconds until a retry may succeed", "required": True,
                          "schema": {"type": "string", "pattern": "^[0-9]+$"}}},
}


def problem_responses(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses=` declaring each status as a problem+json Problem (`s401="..."` overrides
    the description of 401)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"description": descriptions.get(f"s{status}", STATUS_MEANINGS[status]),
                                 "content": {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}}
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        out[status] = entry
    return out


def _fixed(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            responses = operation.get("responses", {})
            invented = responses.get("422", {}).get("content", {}).get("application/json", {}).get("schema", {})
            if invented.get("$ref", "").endswith("/HTTPValidationError"):
                del responses["422"]
                responses.setdefault("400", problem_responses(400)[400])
    text = repr(schema.get("paths"))
    for name in ("HTTPValidationError", "ValidationError"):
        if f"/{name}'" not in text:
            components.pop(name, None)
    return schema


def install_openapi(app: FastAPI) -> None:
    """Serve `app`'s OpenAPI document with problems as problem+json and no invented 422."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _fixed(get_openapi(title=app.title, version=app.version, description=app.description,
                                                    routes=app.routes))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
