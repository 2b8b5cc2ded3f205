"""Every error the facade answers is an OpenADR `problem` (RFC 7807 members type, title, status,
detail, instance; media type application/problem+json), never FastAPI's default body.

The rule: a handler raises VtnProblem(status, title, detail) and nothing else reaches the client;
a validation error names the first few bad members; anything unexpected is a 500 whose detail
says nothing about the internals (the log has it).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROBLEM_MEDIA_TYPE = "application/problem+json"
_TYPE = "https://negawatt.network/vtn/problems/{slug}"


class VtnProblem(Exception):
    """An OpenADR problem to answer with."""

    def __init__(self, status: int, title: str, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.title, self.detail, self.headers = status, title, detail, headers


def problem_response(status: int, title: str, detail: str, instance: str = "",
                     headers: dict[str, str] | None = None) -> JSONResponse:
    """The problem document as a response."""
    slug = title.lower().replace(" ", "-")[:64]
    body = {"type": _TYPE.format(slug=slug), "title": title, "status": status, "detail": detail[:1000],
            "instance": instance}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def validation_detail(errors: list[dict[str, Any]], shown: int = 3) -> str:
    """The first `shown` validation errors, one clause each."""
    parts = []
    for error in errors[:shown]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    more = f" (and {len(errors) - shown} more)" if len(errors) > shown else ""
    return "; ".join(parts) + more


def bad_request(detail: str) -> VtnProblem:
    """400 Bad Request."""
    return VtnProblem(400, "Bad Request", detail)


def not_found(what: str) -> VtnProblem:
    """404: unknown, or not visible to this client (the facade does not say which)."""
    return VtnProblem(404, "Not Found", f"{what} not found")


def forbidden(detail: str) -> VtnProblem:
    """403 Forbidden."""
    return VtnProblem(403, "Forbidden", detail)


def install_problem_handlers(app: FastAPI) -> None:
    """Answer every error of `app` as an OpenADR problem."""

    @app.exception_handler(VtnProblem)
    async def _problem(request: Request, error: VtnProblem) -> JSONResponse:
        return problem_response(error.status, error.title, error.detail, request.url.path, error.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        return problem_response(400, "Bad Request", validation_detail(list(error.errors())), request.url.path)

    @app.exception_handler(ValidationError)
    async def _invalid_model(request: Request, error: ValidationError) -> JSONResponse:
        return problem_response(400, "Bad Request", validation_detail(list(error.errors())), request.url.path)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        titles = {404: "Not Found", 405: "Method Not Allowed", 401: "Unauthorized", 413: "Payload Too Large"}
        return problem_response(error.status_code, titles.get(error.status_code, "Error"), str(error.detail),
                                request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem_response(500, "Internal Server Error", "the facade failed; see its log", request.url.path)
