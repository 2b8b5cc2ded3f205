"""The node as a VEN of an external OpenADR 3 VTN: read the utility's events, curtail, report usage.

With an `[openadr]` table in node.toml (node.ven_settings) the node, besides following FlexMarket,
is a VEN of that VTN over plain HTTP (OpenADR 3.0/3.1 REST; this module imports no VTN code):

1. a bearer token by OAuth2 client credentials, from the token URL `GET /auth/server` names
   (renewed before it expires, and once on a 401);
2. its VEN (`venName`, default the client id) and one resource (its premises) found by name or
   created; the programme found by name (`GET /programs`, paged) unless its id is given;
3. every `poll_seconds`, `GET /events?programID=` in pages of 50 (at most `max_pages`); each answer
   is read only up to `max_response_bytes` and validated with pydantic; an answer that is too large,
   not JSON or not a list is logged and the poll skipped, an event that does not validate or asks
   nothing this node can do is logged and skipped; neither ever ends the node;
4. each event's intervals become reductions (W) for the whole site: `DISPATCH_SETPOINT_RELATIVE`
   `[-v]` asks v kW less, `IMPORT_CAPACITY_LIMIT` `[v]` asks the site's expected draw in the window
   (its own signed readings of recent days, else its draw now) minus v kW; units from the event's
   payload descriptor (`KW` by default, or `W`). node.dispatch shares each reduction over the
   controllable devices and applies and restores it through the same `Dispatcher.curtail` as a
   negawatt commitment, under its "counted once" rule (one setpoint per device, the larger
   reduction, a window the utility holds is not offered to a negawatt request);
5. once an event's last interval has ended and the node has metered it, one `USAGE` report (Wh per
   metering interval, `units: WH`) from the node's own signed readings: the site meter's when the
   node has one, else the sum of its devices'. An event the VTN no longer serves is withdrawn (its
   curtailment restored) when a complete listing no longer has it.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from node.ven_settings import OpenAdrConfig

log = logging.getLogger("negawatt.node.ven")

RELATIVE = "DISPATCH_SETPOINT_RELATIVE"
IMPORT_LIMIT = "IMPORT_CAPACITY_LIMIT"
USAGE = "USAGE"
PAGE = 50  # the spec's largest page
MAX_KW = Decimal(100_000)
MAX_WINDOW_SECONDS = 7 * 86_400
VEN_SCHEMA = """
CREATE TABLE IF NOT EXISTS ven_reports (
    event_id TEXT PRIMARY KEY,
    reported_at REAL NOT NULL,
    report_id TEXT,
    intervals INTEGER NOT NULL
);
"""

Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class VtnError(Exception):
    """The VTN could not be reached or answered something unusable (the message says what)."""


class _Wire(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class WireValues(_Wire):
    """A payload: its type and values."""

    type: Name
    values: list[Any] = Field(max_length=1_000)


class WirePeriod(_Wire):
    """An interval period."""

    start: AwareDatetime
    duration: timedelta


class WireInterval(_Wire):
    """One interval of an event."""

    id: int = Field(ge=0, le=2**31 - 1)
    interval_period: WirePeriod | None = Field(None, alias="intervalPeriod")
    payloads: list[WireValues] = Field(min_length=1, max_length=50)


class WireDescriptor(_Wire):
    """A payload descriptor (only the type and units matter here)."""

    payload_type: Name = Field(alias="payloadType")
    units: Annotated[str, StringConstraints(max_length=32)] | None = None


class WireEvent(_Wire):
    """An event as the node reads it."""

    id: Name
    program_id: Name = Field(alias="programID")
    event_name: Annotated[str, StringConstraints(max_length=128)] | None = Field(None, alias="eventName")
    interval_period: WirePeriod | None = Field(None, alias="intervalPeriod")
    payload_descriptors: list[WireDescriptor] | None = Field(None, alias="payloadDescriptors", max_length=50)
    intervals: list[WireInterval] = Field(min_length=1, max_length=1_000)


class WireObject(_Wire):
    """A program, VEN or resource: its id and name."""

    id: Name
    program_name: Annotated[str, StringConstraints(max_length=128)] | None = Field(None, alias="programName")
    ven_name: Annotated[str, StringConstraints(max_length=128)] | None = Field(None, alias="venName")
    resource_name: Annotated[str, StringConstraints(max_length=128)] | None = Field(None, alias="resourceName")


def _watts(value: Any, units: str | None) -> int:
    """W of one payload value in `units` (kW unless W); ValueError when it is not a bounded number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"a payload value must be a number, not {type(value).__name__}")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise ValueError("a payload value must be a number") from None
    if not number.is_finite() or abs(number) > MAX_KW:
        raise ValueError(f"a payload value must be finite and at most {MAX_KW} kW")
    unit = (units or "KW").upper()
    if unit not in ("KW", "W"):
        raise ValueError(f"unsupported units {units!r}: KW or W")
    return int(number if unit == "W" else number * 1000)


def event_windows(event: WireEvent, expected_draw_w: Callable[[int, int], int]) -> list[tuple[int, int, int, int]]:
    """(interval id, start, end, reduction W) of each interval of `event` that asks a reduction.

    An interval's period is its own or the event's (then the n-th interval, by id, starts n durations
    after it). `expected_draw_w(start, end)` is the site's expected draw, for IMPORT_CAPACITY_LIMIT.
    ValueError (saying what) for an event the node cannot follow: no period, a bad duration, a
    payload value that is not one number, unknown units."""
    units = next((d.units for d in event.payload_descriptors or []
                  if d.payload_type in (RELATIVE, IMPORT_LIMIT) and d.units), None)
    windows = []
    for position, interval in enumerate(sorted(event.intervals, key=lambda item: item.id)):
        period = interval.interval_period or event.interval_period
        if period is None:
            raise ValueError(f"interval {interval.id} has no interval period (neither its own nor the event's)")
        seconds = period.duration.total_seconds()
        if not 0 < seconds <= MAX_WINDOW_SECONDS or seconds != int(seconds):
            raise ValueError(f"interval {interval.id}: the duration must be whole seconds, up to 7 days")
        start = int(period.start.timestamp()) + (0 if interval.interval_period else position * int(seconds))
        end = start + int(seconds)
        asks = [p for p in interval.payloads if p.type in (RELATIVE, IMPORT_LIMIT)]
        if not asks:
            continue  # a price or another signal: nothing to curtail in this interval
        if len(asks) > 1 or len(asks[0].values) != 1:
            raise ValueError(f"interval {interval.id}: one {RELATIVE} or {IMPORT_LIMIT} payload with one value")
        watts = _watts(asks[0].values[0], units)
        reduction = -watts if asks[0].type == RELATIVE else expected_draw_w(start, end) - watts
        if reduction > 0:
            windows.append((interval.id, start, end, reduction))
    return windows


class VenClient:
    """HTTP to one VTN as one VEN client: token, bounded reads, writes; VtnError on failure."""

    def __init__(self, config: OpenAdrConfig, http: httpx.Client | None = None, clock: Callable[[], float] = time.time):
        self.config = config
        self.base = config.url.rstrip("/")
        self.secret = config.secret()
        self.http = http or httpx.Client(timeout=config.timeout_seconds)
        self.clock = clock
        self._token: str | None = None
        self._expires = 0.0

    def close(self) -> None:
        """Close the HTTP client."""
        self.http.close()

    def _read(self, response: httpx.Response) -> Any:
        body = b""
        for chunk in response.iter_bytes():
            body += chunk
            if len(body) > self.config.max_response_bytes:
                raise VtnError(f"{response.request.method} {response.request.url.path}: the answer is larger than "
                               f"{self.config.max_response_bytes} bytes; skipped")
        try:
            return json.loads(body) if body else None
        except ValueError:
            raise VtnError(f"{response.request.method} {response.request.url.path}: the answer is not JSON") from None

    def _send(self, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
        try:
            with self.http.stream(method, url, **kwargs) as response:
                return response.status_code, self._read(response)
        except httpx.HTTPError as error:
            raise VtnError(f"{method} {url}: {type(error).__name__}: {error}") from None

    def token(self) -> str:
        """A bearer token (client credentials at the token URL that GET /auth/server names)."""
        if self._token and self.clock() < self._expires - 30:
            return self._token
        status, server = self._send("GET", f"{self.base}/auth/server")
        url = server.get("tokenURL") if status == 200 and isinstance(server, dict) else None
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url) > 2_000:
            raise VtnError(f"GET /auth/server answered {status} without a usable tokenURL")
        status, answer = self._send("POST", url, data={"grant_type": "client_credentials"},
                                    auth=(self.config.client_id, self.secret))
        if status != 200 or not isinstance(answer, dict) or not isinstance(answer.get("access_token"), str):
            reason = answer.get("error_description") or answer.get("error") if isinstance(answer, dict) else None
            raise VtnError(f"the token endpoint refused client {self.config.client_id!r}: {status} {reason or ''}")
        expires = answer.get("expires_in")
        self._token = answer["access_token"][:8_192]
        self._expires = self.clock() + (float(expires) if isinstance(expires, (int, float)) else 300.0)
        return self._token

    def call(self, method: str, path: str, params: dict | None = None, body: dict | None = None) -> Any:
        """The JSON answer of one API call (a 401 renews the token once); VtnError for any other error."""
        for attempt in (0, 1):
            status, answer = self._send(method, f"{self.base}{path}", params=params, json=body,
                                        headers={"Authorization": f"Bearer {self.token()}"})
            if status == 401 and attempt == 0:
                self._token = None
                continue
            if 200 <= status < 300:
                return answer
            detail = answer.get("detail") or answer.get("title") if isinstance(answer, dict) else None
            raise VtnError(f"{method} {path}: {status} {str(detail or '')[:300]}")
        raise AssertionError("unreachable")

    def pages(self, path: str, params: dict | None = None) -> Iterator[list[Any]]:
        """The pages of a collection (skip/limit 50), at most `max_pages`; VtnError for a page that is
        not a list. The last page yielded is shorter than 50 when the listing is complete."""
        for page in range(self.config.max_pages):
            answer = self.call("GET", path, params={**(params or {}), "skip": page * PAGE, "limit": PAGE})
            if not isinstance(answer, list):
                raise VtnError(f"GET {path}: a collection must be a JSON list")
            yield answer
            if len(answer) < PAGE:
                return

    def find(self, path: str, params: dict, name_field: str, name: str) -> str | None:
        """The id of the object named `name` in a collection (its filter may be ignored by the VTN)."""
        for page in self.pages(path, params):
            for item in page:
                try:
                    found = WireObject.model_validate(item)
                except ValidationError:
                    continue
                if getattr(found, name_field) == name:
                    return found.id
        return None

    def create(self, path: str, body: dict) -> str:
        """POST an object; its id."""
        answer = self.call("POST", path, body=body)
        try:
            return WireObject.model_validate(answer).id
        except ValidationError:
            raise VtnError(f"POST {path}: the answer has no id") from None


class Ven:
    """The node's VEN: registration, event polling into the dispatcher, usage reports."""

    def __init__(self, client: VenClient, dispatcher: Any, outbox: Any, report_devices: list[str],
                 interval_seconds: int, clock: Callable[[], float], expected_draw_w: Callable[[int, int], int],
                 db: sqlite3.Connection):
        self.client = client
        self.config = client.config
        self.dispatcher = dispatcher
        self.outbox = outbox
        self.report_devices = report_devices
        self.interval = interval_seconds
        self.clock = clock
        self.expected_draw_w = expected_draw_w
        self.db = db
        db.executescript(VEN_SCHEMA)
        self.ven_id: str | None = None
        self.resource_id: str | None = None
        self.program_id: str | None = self.config.program_id
        self.skipped: list[str] = []  # why each skipped event or answer was skipped (the latest 100)
        self._warned: set[str] = set()

    @property
    def ven_name(self) -> str:
        """The VEN's name at the VTN."""
        return self.config.ven_name or self.config.client_id

    def register(self) -> None:
        """Find or create the VEN and its resource, and find the programme (VtnError if it is unknown)."""
        if self.ven_id is None:
            self.ven_id = (self.client.find("/vens", {"venName": self.ven_name}, "ven_name", self.ven_name)
                           or self.client.create("/vens", {"objectType": "VEN_VEN_REQUEST", "venName": self.ven_name}))
            log.info("VEN %s is %s at %s", self.ven_name, self.ven_id, self.client.base)
        if self.resource_id is None:
            name = self.config.resource_name
            self.resource_id = (self.client.find("/resources", {"venID": self.ven_id, "resourceName": name},
                                                 "resource_name", name)
                                or self.client.create("/resources", {"objectType": "VEN_RESOURCE_REQUEST",
                                                                     "resourceName": name, "venID": self.ven_id}))
        if self.program_id is None:
            self.program_id = self.client.find("/programs", {}, "program_name", self.config.program)
            if self.program_id is None:
                raise VtnError(f"the VTN serves no programme named {self.config.program!r} to this client")

    def _skip(self, why: str) -> None:
        """Log why something was skipped: a warning the first time, then at debug level (a broken
        event stays broken from poll to poll)."""
        if why in self._warned:
            log.debug("openadr: %s", why)
            return
        log.warning("openadr: %s", why)
        self._warned = {*list(self._warned)[-999:], why}
        self.skipped = [*self.skipped[-99:], why]

    def poll(self) -> int:
        """One poll: register if needed, plan every usable event, withdraw the ones gone, report the
        ones ended. Returns how many device windows were new. Never raises for the VTN's answers."""
        try:
            self.register()
            events, complete = self._events()
        except VtnError as error:
            self._skip(f"poll skipped: {error}")
            return 0
        added = 0
        served = set()
        for event in events:
            served.add(event.id)
            try:
                windows = event_windows(event, self.expected_draw_w)
            except ValueError as error:
                self._skip(f"event {event.id} skipped: {error}")
                continue
            windows = [w for w in windows if w[2] > self.clock()]  # an interval already over is not followed
            if not windows:
                continue
            added += self.dispatcher.on_utility_event(event.id, self.program_id, windows)
        if complete:
            planned = {w["event_id"] for w in self.dispatcher.utility_windows() if w["state"] in ("planned", "applied")}
            for event_id in planned - served:
                self.dispatcher.on_utility_gone(event_id)
        self.report_ended()
        return added

    def _events(self) -> tuple[list[WireEvent], bool]:
        """The programme's events that validate (the others logged and skipped), and whether the
        listing was complete (fewer than max_pages full pages)."""
        events, pages, last = [], 0, PAGE
        for page in self.client.pages("/events", {"programID": self.program_id}):
            pages, last = pages + 1, len(page)
            for item in page:
                try:
                    event = WireEvent.model_validate(item)
                except ValidationError as error:
                    where = item.get("id") if isinstance(item, dict) and isinstance(item.get("id"), str) else "?"
                    self._skip(f"event {where[:128]} skipped: it does not validate ({_first_error(error)})")
                    continue
                if event.program_id != self.program_id:
                    continue  # a VTN that ignores the filter
                events.append(event)
        return events, last < PAGE or pages < self.config.max_pages

    def report_ended(self) -> int:
        """POST one USAGE report per event whose windows have all ended and been metered (or ended two
        metering intervals ago, with what was metered). Returns how many were posted."""
        now = self.clock()
        by_event: dict[str, list[dict]] = {}
        for window in self.dispatcher.utility_windows():
            by_event.setdefault(window["event_id"], []).append(window)
        posted = 0
        for event_id, windows in by_event.items():
            if any(w["state"] in ("planned", "applied", "withdrawing") for w in windows) or all(
                    w["state"] == "cancelled" for w in windows):
                continue
            if self.db.execute("SELECT 1 FROM ven_reports WHERE event_id = ?", (event_id,)).fetchone():
                continue
            start = min(w["start"] for w in windows) // self.interval * self.interval
            end = -(-max(w["end"] for w in windows) // self.interval) * self.interval
            readings = self.usage_wh(start, end)
            if len(readings) < (end - start) // self.interval and now < end + 2 * self.interval:
                continue  # the last interval is not metered yet
            if not readings:
                self._skip(f"event {event_id}: nothing metered in its window, no usage report")
                self.db.execute("INSERT INTO ven_reports (event_id, reported_at, intervals) VALUES (?, ?, 0)",
                                (event_id, now))
                continue
            try:
                answer = self.client.call("POST", "/reports", body=self.usage_report(event_id, readings))
            except VtnError as error:
                self._skip(f"event {event_id}: usage report not accepted ({error}); retried next poll")
                continue
            report_id = answer.get("id") if isinstance(answer, dict) and isinstance(answer.get("id"), str) else None
            self.db.execute("INSERT INTO ven_reports (event_id, reported_at, report_id, intervals) VALUES (?, ?, ?, ?)",
                            (event_id, now, report_id, len(readings)))
            log.info("openadr: usage of event %s reported (%d intervals, report %s)", event_id, len(readings),
                     report_id)
            posted += 1
        return posted

    def usage_wh(self, start: int, end: int) -> dict[int, int]:
        """{interval start: Wh} of the node's signed readings in [start, end): the intervals every
        reported device has a reading for, summed."""
        per_device = [self.outbox.readings(device, start, end) for device in self.report_devices]
        if not per_device:
            return {}
        starts = set.intersection(*(set(r) for r in per_device))
        return {t: sum(r[t][0] for r in per_device) for t in sorted(starts) if per_device[0][t][1] == self.interval}

    def usage_report(self, event_id: str, readings: dict[int, int]) -> dict:
        """The OpenADR report of `readings` (Wh per metering interval) on one event."""
        def period(start: int) -> dict:
            return {"start": datetime.fromtimestamp(start, timezone.utc).isoformat().replace("+00:00", "Z"),
                    "duration": f"PT{self.interval}S"}

        return {"objectType": "REPORT", "programID": self.program_id, "eventID": event_id,
                "clientName": self.ven_name, "reportName": f"usage-{event_id}"[:128],
                "payloadDescriptors": [{"objectType": "REPORT_PAYLOAD_DESCRIPTOR", "payloadType": USAGE,
                                        "readingType": "DIRECT_READ", "units": "WH"}],
                "resources": [{"resourceName": self.config.resource_name,
                               "intervals": [{"id": n, "intervalPeriod": period(t),
                                              "payloads": [{"type": USAGE, "values": [wh]}]}
                                             for n, (t, wh) in enumerate(sorted(readings.items()))]}]}

    def reported(self) -> list[dict]:
        """The usage reports posted: event id, report id, intervals."""
        rows = self.db.execute("SELECT event_id, report_id, intervals FROM ven_reports ORDER BY reported_at").fetchall()
        return [{"event_id": e, "report_id": r, "intervals": n} for e, r, n in rows]


def run_ven(ven: Ven, stop: Any) -> None:
    """Poll every `poll_seconds` until `stop` (a threading.Event) is set, in the caller's thread (the
    node runs it in its own, so a slow VTN never holds up metering or dispatch)."""
    while not stop.is_set():
        try:
            ven.poll()
        except Exception:  # a bug or a database hiccup: logged, tried again at the next poll
            log.exception("openadr: poll failed")
        stop.wait(ven.config.poll_seconds)
    ven.client.close()


def _first_error(error: ValidationError) -> str:
    item = error.errors()[0]
    where = ".".join(str(part) for part in item["loc"])
    return f"{where}: {item['msg']}"[:300] + (f" and {error.error_count() - 1} more" if error.error_count() > 1 else "")
