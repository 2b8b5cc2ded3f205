"""The limits every negawatt HTTP server applies to its clients, whatever the role.

Rules:
- **Body cap.** No request body larger than `max_body_bytes` is ever read whole. A declared
  `Content-Length` over the cap is answered 413 (problem+json) at once, before the app or its parser
  sees a byte of the body; a chunked (streamed) body is counted while the app reads it and cut off
  with the same 413 the moment it passes the cap, so at most the cap plus one read chunk is held.
  The 413 carries `Connection: close`: the server drops the connection instead of draining the rest.
  `BodyLimitMiddleware` does this as a pure ASGI middleware in front of any app; a route that takes
  larger bodies by design (a bulk upload) is named with its own cap in `path_limits`.
- **Request-head timeout.** A client has `header_timeout` seconds, from opening the connection or
  from the end of the previous response on it, to deliver a complete request head (request line and
  headers); otherwise the server closes the connection. A head larger than `max_head_bytes` is
  answered 431 and the connection closed. uvicorn itself times out only a keep-alive connection on
  which no byte at all arrives after a response, and any single byte disarms that timer, so a slow
  client (slowloris) could hold a connection forever. `header_deadline_protocol` subclasses
  uvicorn's HTTP/1.1 protocol (httptools or h11) with a per-connection timer: it is armed when the
  connection opens and whenever a response completes, and when it fires it closes the connection
  unless a request head has been parsed since (uvicorn starts a new request cycle for each head)
  or a request is being answered.
- **Keep-alive and connections.** An idle keep-alive connection is closed after
  `keep_alive_timeout` seconds (uvicorn's timer); past `max_connections` open connections (or
  requests in progress) uvicorn answers 503 (its `limit_concurrency`).

`limited_server` builds a uvicorn server with all of these; every role that serves HTTP uses it.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, Field

from protocol.problems import PROBLEM_MEDIA_TYPE, ProblemNamespace, Reason, problem_body

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 64 * 1024


class HttpLimits(BaseModel):
    """The limits one HTTP server applies (see the module docstring for what each bounds)."""

    model_config = ConfigDict(frozen=True)

    max_body_bytes: int = Field(DEFAULT_MAX_BODY_BYTES, ge=1_024, description="largest request body accepted")
    header_timeout: float = Field(10.0, gt=0, le=600, description="seconds a client has to send a request head")
    max_head_bytes: int = Field(32 * 1024, ge=1_024, description="largest request head (line and headers)")
    keep_alive_timeout: int = Field(5, ge=1, le=600, description="seconds an idle keep-alive connection stays")
    max_connections: int = Field(1_000, ge=1, description="open connections (or requests) before 503")


# ------------------------------------------------------------------------------------------------
# the body cap


class _BodyTooLarge(Exception):
    """Raised into the app when a streamed body passes the cap (the 413 is already sent)."""


class BodyLimitMiddleware:
    """ASGI middleware refusing request bodies over `max_bytes` with a 413 problem in `namespace`.

    A declared Content-Length over the cap is refused before the app runs; a chunked body is
    counted as the app receives it and refused when it passes the cap (the app's own answer, if it
    makes one after that, is dropped). Requests within the cap pass through untouched.
    `path_limits` maps an exact request path to its own cap instead of `max_bytes`.
    """

    def __init__(self, app: Any, max_bytes: int = DEFAULT_MAX_BODY_BYTES,
                 namespace: ProblemNamespace = ProblemNamespace.API, reason: Reason | str = Reason.TOO_LARGE,
                 title: str = "Request body too large", path_limits: dict[str, int] | None = None):
        self.app = app
        self.max_bytes = max_bytes
        self.path_limits = dict(path_limits or {})
        self.namespace = namespace
        self.reason = reason
        self.title = title

    async def _refuse(self, send: Any, detail: str) -> None:
        body = orjson.dumps(problem_body(self.namespace, 413, self.reason, self.title, detail))
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                                (b"content-length", str(len(body)).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = self.path_limits.get(scope.get("path", ""), self.max_bytes)
        declared: int | None = None
        streamed = False
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit():
                declared = int(value)
            elif name == b"transfer-encoding":
                streamed = True
        if declared is not None and declared > cap:
            log.info("refused a %d-byte body on %s %s", declared, scope.get("method"), scope.get("path"))
            await self._refuse(send, f"the body is {declared} bytes; this server accepts at most "
                                     f"{cap} bytes")
            return

        state = {"received": 0, "complete": declared == 0 or (declared is None and not streamed),
                 "started": False, "refused": False}

        async def limited_receive() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                state["received"] += len(message.get("body", b""))
                if not message.get("more_body", False):
                    state["complete"] = True
                if state["received"] > cap:
                    if not state["started"]:
                        state["refused"] = True
                        log.info("cut off a streamed body over %d bytes on %s %s", cap,
                                 scope.get("method"), scope.get("path"))
                        await self._refuse(send, f"the body passed {cap} bytes, the most this "
                                                 "server accepts")
                    raise _BodyTooLarge(f"more than {cap} bytes")
            return message

        async def guarded_send(message: dict) -> None:
            if state["refused"]:
                return  # the 413 went out; what the app answers to the cut-off body is dropped
            if message["type"] == "http.response.start":
                state["started"] = True
                if streamed and not state["complete"]:
                    # the app answered without reading all of a body of unknown length: close the
                    # connection rather than let the server drain an unbounded stream
                    message = {**message, "headers": [*message.get("headers", []), (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not state["refused"]:
                raise
            # the app failed on the body we cut off; the client already has its 413


# ------------------------------------------------------------------------------------------------
# the request-head deadline (a mixin for uvicorn's HTTP/1.1 protocol classes)


class _HeadDeadline:
    """Closes a connection whose request head is not complete `header_timeout` seconds after the
    connection opened or the previous response ended; answers 431 to a head over `max_head_bytes`.

    Works with uvicorn's HttpToolsProtocol and H11Protocol: both keep the request being answered in
    `self.cycle` (replaced when a new request head has been parsed, with `response_complete` set
    once answered), call `on_response_complete` after each response, and expose `loop`/`transport`.
    """

    header_timeout: float = 10.0
    max_head_bytes: int = 32 * 1024
    _head_timer: asyncio.TimerHandle | None = None
    _head_cycle: Any = None
    _head_bytes: int = 0

    def _arm_head_deadline(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_cycle = self.cycle  # type: ignore[attr-defined]
        self._head_bytes = 0
        loop = self.loop  # type: ignore[attr-defined]
        self._head_timer = loop.call_later(self.header_timeout, self._head_deadline_passed)

    def _awaiting_head(self) -> bool:
        cycle = self.cycle  # type: ignore[attr-defined]
        return cycle is self._head_cycle and (cycle is None or cycle.response_complete)

    def _head_deadline_passed(self) -> None:
        self._head_timer = None
        transport = self.transport  # type: ignore[attr-defined]
        if self._awaiting_head() and not transport.is_closing():
            log.info("closed a connection from %s: no complete request head within %g s",
                     self.client, self.header_timeout)  # type: ignore[attr-defined]
            transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # noqa: D102
        super().connection_made(transport)  # type: ignore[misc]
        self._arm_head_deadline()

    def data_received(self, data: bytes) -> None:  # noqa: D102
        super().data_received(data)  # type: ignore[misc]
        transport = self.transport  # type: ignore[attr-defined]
        if self._awaiting_head() and not transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                log.info("closed a connection from %s: request head over %d bytes",
                         self.client, self.max_head_bytes)  # type: ignore[attr-defined]
                transport.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n"
                                b"connection: close\r\n\r\n")
                transport.close()

    def on_response_complete(self) -> None:  # noqa: D102
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing():  # type: ignore[attr-defined]
            self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:  # noqa: D102
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)  # type: ignore[misc]


def header_deadline_protocol(limits: HttpLimits, http: str = "auto") -> type[asyncio.Protocol]:
    """uvicorn's HTTP/1.1 protocol class `http` ("auto", "httptools" or "h11") with the request-head
    deadline and size cap of `limits`; pass it to uvicorn.Config as `http=`."""
    if http == "auto":
        try:
            import httptools  # noqa: F401
            http = "httptools"
        except ImportError:  # pragma: no cover  (httptools is a dependency)
            http = "h11"
    if http == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    elif http == "h11":
        from uvicorn.protocols.http.h11_impl import H11Protocol as base
    else:
        raise ValueError(f"no request-head deadline for the {http!r} protocol; use httptools or h11")
    return type(f"HeadDeadline{base.__name__}", (_HeadDeadline, base),
                {"header_timeout": limits.header_timeout, "max_head_bytes": limits.max_head_bytes})


def limited_config(app: Any, limits: HttpLimits | None = None, *, http: str = "auto", **options: Any):
    """A uvicorn.Config for `app` with `limits` (the head deadline protocol, keep-alive timeout,
    connection limit, h11 head size); `options` are uvicorn.Config's other arguments (host, port...)."""
    import uvicorn

    limits = limits or HttpLimits()
    return uvicorn.Config(app, http=header_deadline_protocol(limits, http),
                          timeout_keep_alive=limits.keep_alive_timeout, limit_concurrency=limits.max_connections,
                          h11_max_incomplete_event_size=limits.max_head_bytes, **options)


def limited_server(app: Any, limits: HttpLimits | None = None, *, server_class: type | None = None,
                   http: str = "auto", **options: Any):
    """A uvicorn server (of `server_class`, default uvicorn.Server) serving `app` within `limits`;
    call `.run()` on it. The body cap is the app's (BodyLimitMiddleware), not the server's."""
    import uvicorn

    return (server_class or uvicorn.Server)(limited_config(app, limits, http=http, **options))
