"""The HTTP plumbing the ingest's routes share: problem responses, bounded body reading, payload
parsing, and the app-state dependencies (the Ingestor, the clock, the body cap).

The rule: a body is read only up to its route's cap (a 413 `payload_too_large` beyond, before it is
read whole), parsed by the protocol's codec, and a failed parse is an `invalid_payload` listing the
field errors without echoing the input. oracle.ingest_api (the single-message routes) and
oracle.bulk_ingest_api (the bulk upload) both build on this module, so they judge a body alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from oracle.ingest import Ingestor, Rejected
from protocol.problems import PROBLEM_MEDIA_TYPE, ProblemNamespace, Reason, problem_body

DEFAULT_MAX_BODY_BYTES = 64 * 1024


# ------------------------------------------------------------------------------------------------
# problems


def problem(status: int, code: Reason | str, title: str, detail: str, **extra: Any) -> JSONResponse:
    """An RFC 9457 problem response carrying the oracle's reason `code` (in the ingest namespace)."""
    body = problem_body(ProblemNamespace.INGEST, status, code, title, detail, **extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE)


def _errors(error: ValidationError | RequestValidationError) -> list[dict[str, Any]]:
    """The field errors of `error` as plain JSON (loc, msg, type), never the input."""
    if isinstance(error, ValidationError):
        raw = error.errors(include_url=False, include_input=False, include_context=False)
    else:
        raw = error.errors()
    return [{"loc": [part if isinstance(part, (str, int)) else str(part) for part in item.get("loc", ())],
             "msg": str(item.get("msg", "")), "type": str(item.get("type", ""))} for item in raw]


def _summary(errors: list[dict[str, Any]], shown: int = 3) -> str:
    """The first few field errors as one line, e.g. "readings.0: Input should be ..."."""
    parts = [f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in errors[:shown]]
    more = len(errors) - shown
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


# ------------------------------------------------------------------------------------------------
# bodies


async def _read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than `limit` bytes without reading them all."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise Rejected(Reason.PAYLOAD_TOO_LARGE.value, f"{declared} bytes; at most {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise Rejected(Reason.PAYLOAD_TOO_LARGE.value, f"more than {limit} bytes")
    return bytes(body)


def _parse(model: type[BaseModel], body: bytes) -> Any:
    """`body` parsed as `model` (JSON), or _InvalidPayload with its field errors."""
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        raise _InvalidPayload(_errors(error)) from None


class _InvalidPayload(Exception):
    """A body the codec refused; `errors` are its field errors (loc, msg, type)."""

    def __init__(self, errors: list[dict[str, Any]]):
        super().__init__("invalid payload")
        self.errors = errors


# ------------------------------------------------------------------------------------------------
# dependencies: the app's state


async def get_ingestor(request: Request) -> Ingestor:
    """The app's Ingestor (`app.state.ingestor`)."""
    return request.app.state.ingestor


async def get_clock(request: Request) -> Callable[[], float]:
    """The app's clock: "now" (unix seconds) for each message."""
    return request.app.state.clock


async def get_body(request: Request) -> bytes:
    """The request body, at most the app's `max_body_bytes` (413 problem beyond)."""
    return await _read_body(request, request.app.state.max_body_bytes)


IngestorDep = Annotated[Ingestor, Depends(get_ingestor)]
Clock = Annotated[Callable[[], float], Depends(get_clock)]
Body = Annotated[bytes, Depends(get_body)]
