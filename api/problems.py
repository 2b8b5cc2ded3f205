"""RFC 9457 problem responses: every error this API gives is a 4xx `application/problem+json` body
saying what was wrong; unexpected failures are logged and still answered as a problem (500)."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE = "https://negawatt.network/problems/{code}"
log = logging.getLogger(__name__)


class ApiProblem(Exception):
    """Raise to answer with a problem: status, machine-readable code, title and detail."""

    def __init__(self, status: int, code: str, title: str, detail: str, headers: dict[str, str] | None = None,
                 **extra: Any):
        super().__init__(detail)
        self.status, self.code, self.title, self.detail = status, code, title, detail
        self.headers = headers or {}
        self.extra = extra


def problem(status: int, code: str, title: str, detail: str, headers: dict[str, str] | None = None,
            **extra: Any) -> Response:
    """A problem+json response."""
    body = {"type": PROBLEM_TYPE.format(code=code), "title": title, "status": status, "detail": detail,
            "code": code, **extra}
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def problem_bytes(status: int, code: str, title: str, detail: str) -> bytes:
    """The body of a problem, for middleware that answers without a Response object."""
    return orjson.dumps({"type": PROBLEM_TYPE.format(code=code), "title": title, "status": status,
                         "detail": detail, "code": code})


def _errors(error: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for item in error.errors():
        loc = [part if isinstance(part, (str, int)) else str(part) for part in item.get("loc", ())]
        out.append({"loc": loc, "msg": str(item.get("msg", "")), "type": str(item.get("type", ""))})
    return out


_HTTP_CODES = {404: ("not_found", "Not found"), 405: ("method_not_allowed", "Method not allowed"),
               400: ("bad_request", "Bad request"), 401: ("unauthorized", "Unauthorized"),
               403: ("forbidden", "Forbidden"), 413: ("too_large", "Request too large"),
               415: ("unsupported_media_type", "Unsupported media type")}


def install_problem_handlers(app: FastAPI) -> None:
    """Turn framework errors (validation, unknown routes, methods) and ApiProblem into problem+json."""

    @app.exception_handler(ApiProblem)
    async def _api_problem(_request: Request, error: ApiProblem) -> Response:
        return problem(error.status, error.code, error.title, error.detail, headers=error.headers, **error.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, error: RequestValidationError) -> Response:
        errors = _errors(error)
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors) or "invalid request"
        return problem(400, "invalid_parameter", "Invalid request", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, error: StarletteHTTPException) -> Response:
        code, title = _HTTP_CODES.get(error.status_code, ("http_error", "HTTP error"))
        detail = error.detail if isinstance(error.detail, str) else title
        return problem(error.status_code, code, title, detail, headers=getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem(500, "internal_error", "Internal error", "the server failed; the error is logged")
