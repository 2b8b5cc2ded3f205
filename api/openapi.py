"""The API's OpenAPI document says what the routes really send.

Rules: every error a route can answer is declared on it, as `application/problem+json` with the
Problem schema (never `application/json`); a 429 declares its `Retry-After` header; FastAPI's
automatic 422 "Validation Error" is not declared, because this API answers invalid input with a 400
problem (api.problems) and never with a 422. Routes list their statuses with `problem_responses`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from protocol.problems import PROBLEM_MEDIA_TYPE, Problem

DESCRIPTIONS = {
    400: "invalid parameter or body (the problem's `errors` lists each one)",
    401: "not signed in, or the SIWE login was refused (the problem's `code` says why)",
    403: "signed in, but not the device's owner",
    404: "no such resource",
    413: "the request body is larger than this API accepts",
    429: "too many requests from this client; retry after `Retry-After` seconds",
    503: "not ready",
}
_RETRY_AFTER = {"Retry-After": {"description": "seconds until a request will be accepted",
                                "schema": {"type": "integer", "minimum": 1}}}


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """FastAPI `responses=` declaring each of `statuses` as a problem (moved to problem+json by
    `install_openapi`)."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        out[status] = {"model": Problem, "description": DESCRIPTIONS.get(status, "problem")}
        if status == 429:
            out[status]["headers"] = _RETRY_AFTER
    return out


def _truthful(document: dict[str, Any]) -> dict[str, Any]:
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.get("responses", {})
            responses.pop("422", None)
            for status, response in responses.items():
                content = response.get("content", {})
                if status[0] in "45" and "application/json" in content:
                    content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
    schemas = document.get("components", {}).get("schemas", {})
    text = str(document.get("paths"))
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused in schemas and f"/{unused}'" not in text:
            del schemas[unused]
    return document


def install_openapi(app: FastAPI) -> None:
    """Serve `app`'s OpenAPI document with the rules above applied (built once, on first request)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _truthful(get_openapi(title=app.title, version=app.version,
                                                       description=app.description, routes=app.routes,
                                                       tags=app.openapi_tags, servers=app.servers))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
