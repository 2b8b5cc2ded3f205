"""Serving a route's JSON: orjson bytes of the plain dict the reads built, without re-validating it
against the route's response model (the models document the shape; validating costs more than the query)."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response serialized with orjson (no response-model validation on the hot path)."""
    return Response(orjson.dumps(data), status_code=status, media_type="application/json", headers=headers)
