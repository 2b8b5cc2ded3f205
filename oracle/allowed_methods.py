"""The Allow header of a 405: every method the path supports, over all of the app's routes.

Rule: a 405 lists exactly the methods its resource takes (RFC 9110 15.5.6). Starlette stops at the
first route whose path matches, so on a path served by two routes (GET and POST /v1/commitments)
its Allow would name only one of them; `allowed_methods` asks every route.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.routing import Match


def allowed_methods(request: Request) -> str:
    """The methods any route of the request's app takes on the request's path, e.g. "GET, HEAD, POST"."""
    methods: set[str] = set()
    scope = dict(request.scope)
    for route in request.app.routes:
        match, _ = route.matches(scope)
        if match is not Match.NONE:
            methods |= set(getattr(route, "methods", None) or ())
    return ", ".join(sorted(methods))
