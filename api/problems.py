"""RFC 9457 problem responses: every error this API gives is a 4xx `application/problem+json` body
saying what was wrong; unexpected failures are logged and still answered as a problem (500).
The format and the reason codes are protocol.problems'; this module raises and serves them."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import compile_path

from protocol.problems import PROBLEM_MEDIA_TYPE, ProblemNamespace, Reason, problem_body

__all__ = ["PROBLEM_MEDIA_TYPE", "ApiProblem", "Reason", "install_problem_handlers", "problem", "problem_bytes"]
log = logging.getLogger(__name__)


class ApiProblem(Exception):
    """Raise to answer with a problem: status, machine-readable code, title and detail."""

    def __init__(self, status: int, code: Reason | str, title: str, detail: str,
                 headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail)
        self.status, self.code, self.title, self.detail = status, code, title, detail
        self.headers = headers or {}
        self.extra = extra


def problem(status: int, code: Reason | str, title: str, detail: str, headers: dict[str, str] | None = None,
            **extra: Any) -> Response:
    """A problem+json response in the API's namespace."""
    body = problem_body(ProblemNamespace.API, status, code, title, detail, **extra)
    return Response(orjson.dumps(body), status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def problem_bytes(status: int, code: Reason | str, title: str, detail: str) -> bytes:
    """The body of a problem, for middleware that answers without a Response object."""
    return orjson.dumps(problem_body(ProblemNamespace.API, status, code, title, detail))


def _errors(error: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for item in error.errors():
        loc = [part if isinstance(part, (str, int)) else str(part) for part in item.get("loc", ())]
        out.append({"loc": loc, "msg": str(item.get("msg", "")), "type": str(item.get("type", ""))})
    return out


_HTTP_CODES = {404: (Reason.NOT_FOUND, "Not found"), 405: (Reason.METHOD_NOT_ALLOWED, "Method not allowed"),
               400: (Reason.BAD_REQUEST, "Bad request"), 401: (Reason.UNAUTHORIZED, "Unauthorized"),
               403: (Reason.FORBIDDEN, "Forbidden"), 413: (Reason.TOO_LARGE, "Request too large"),
               415: (Reason.UNSUPPORTED_MEDIA_TYPE, "Unsupported media type")}


def _allowed_methods(request: Request) -> list[str]:
    """Every method the OpenAPI document lists for the request's path (the router's own 405 names only
    the first matching route's, so a path with PUT and DELETE routes would claim to allow PUT alone)."""
    app = request.app
    table = getattr(app.state, "allowed_methods", None)
    if table is None:
        table = [(compile_path(template)[0], sorted(method.upper() for method in operations))
                 for template, operations in app.openapi().get("paths", {}).items()]
        app.state.allowed_methods = table
    path = request.scope.get("path", "")
    return sorted({method for regex, methods in table if regex.match(path) for method in methods})


def install_problem_handlers(app: FastAPI) -> None:
    """Turn framework errors (validation, unknown routes, methods) and ApiProblem into problem+json."""

    @app.exception_handler(ApiProblem)
    async def _api_problem(_request: Request, error: ApiProblem) -> Response:
        return problem(error.status, error.code, error.title, error.detail, headers=error.headers, **error.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, error: RequestValidationError) -> Response:
        errors = _errors(error)
        detail = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in errors) or "invalid request"
        return problem(400, Reason.INVALID_PARAMETER, "Invalid request", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> Response:
        code, title = _HTTP_CODES.get(error.status_code, (Reason.HTTP_ERROR, "HTTP error"))
        detail = error.detail if isinstance(error.detail, str) else title
        headers = dict(getattr(error, "headers", None) or {})
        if error.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return problem(error.status_code, code, title, detail, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return problem(500, Reason.INTERNAL_ERROR, "Internal error", "the server failed; the error is logged")
