"""Publishing the site's signed day-ahead flexibility forecast to the API, losing nothing to an outage.

Rules:
- **What.** `build(day_start)` asks `offers_of(windows)` for the 24 hours from `day_start` (a whole
  hour) at once, one list of tranches per hour, and signs the FlexForecast with the site meter's key
  (protocol.forecast). A tranche `offers_of` returns with 0 W or less is dropped; at most two per
  hour, prices strictly ascending (the protocol's bounds: a ValueError names the hour otherwise).
- **Sequence.** Each built forecast takes `max(last + 1, int(clock()))`: it increases on every build
  and, being at least the clock's seconds, stays above what the API holds even if the state file is
  lost. The sequence and the forecast waiting for its acknowledgement are persisted in a small JSON
  file at `state_path`, written atomically (a temporary file, fsync, os.replace) *before* it is sent;
  an unreadable state file is logged and replaced. One caller at a time (the node's runtime loop).
- **Delivery.** `publish()` POSTs the pending forecast to `{api_url}/v1/forecasts` (httpx with
  timeouts). A 2xx acknowledges it (the pending entry is cleared). A transport error, a 5xx, 429, or
  `unknown_device` (the API has not indexed the site's registration yet) keeps it for the next call,
  which re-sends the very same signed forecast (the API answers an identical re-send as a
  duplicate), so a peer being down loses nothing. Any other refusal is permanent: it is logged with
  the API's reason and dropped. A pending forecast for an earlier day than the one due is
  superseded by a fresh one (the API keeps only a site's latest anyway).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from protocol.forecast import MAX_TRANCHES_PER_HOUR, FlexForecast, Tranche, decode_forecast, encode_forecast
from protocol.units import SECONDS_PER_DAY, SECONDS_PER_HOUR

log = logging.getLogger("negawatt.node.forecast")

FORECAST_PATH = "/v1/forecasts"
FORECAST_HOURS = 24
RETRYABLE_CODES = frozenset({"unknown_device", "rate_limited"})


def next_day_start(now: float) -> int:
    """The next UTC midnight strictly after `now` (unix seconds): the day a day-ahead forecast is for."""
    return (int(now) // SECONDS_PER_DAY + 1) * SECONDS_PER_DAY


def _write_atomically(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w") as stream:
            json.dump(data, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class ForecastPublisher:
    """Builds, signs and delivers one site's day-ahead forecasts (see the module docstring)."""

    def __init__(self, site: str, site_key: bytes | str, zone: int, chain_id: int, registry: str, api_url: str,
                 offers_of: Callable[[list[tuple[int, int]]], list[list[Tranche]]], clock: Callable[[], float] = time.time,
                 state_path: str | Path = "forecast-state.json", timeout: float = 10.0):
        self.site = site
        self.site_key = site_key
        self.zone = zone
        self.chain_id = chain_id
        self.registry = registry
        self.api_url = api_url.rstrip("/")
        self.offers_of = offers_of
        self.clock = clock
        self.state_path = Path(state_path)
        self.http = httpx.Client(timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)))
        self._state = self._load()

    # state ------------------------------------------------------------------------------------------

    def _load(self) -> dict[str, Any]:
        fresh = {"sequence": -1, "pending": None, "acknowledged_start": None}
        if not self.state_path.exists():
            return fresh
        try:
            state = json.loads(self.state_path.read_text())
            loaded = {"sequence": int(state["sequence"]), "pending": state.get("pending"),
                      "acknowledged_start": state.get("acknowledged_start")}
            if loaded["pending"] is not None:
                decode_forecast(loaded["pending"])
            return loaded
        except (ValueError, KeyError, TypeError) as error:  # pydantic's ValidationError is a ValueError
            # unreadable: start afresh; the clock-based sequence still stays above what the API holds
            log.error("forecast state %s is unreadable (%s); starting afresh", self.state_path, error)
            return fresh

    def _save(self) -> None:
        _write_atomically(self.state_path, self._state)

    @property
    def sequence(self) -> int:
        """The sequence of the last forecast built (-1 before the first)."""
        return self._state["sequence"]

    @property
    def pending(self) -> FlexForecast | None:
        """The forecast built but not yet acknowledged by the API, if any."""
        stored = self._state["pending"]
        return decode_forecast(stored) if stored is not None else None

    # building ---------------------------------------------------------------------------------------

    def _hours(self, day_start: int) -> tuple[tuple[Tranche, ...], ...]:
        windows = [(day_start + i * SECONDS_PER_HOUR, day_start + (i + 1) * SECONDS_PER_HOUR)
                   for i in range(FORECAST_HOURS)]
        offers = self.offers_of(windows)
        if len(offers) != len(windows):
            raise ValueError(f"offers_of answered {len(offers)} hours for {len(windows)}")
        hours = []
        for (hour_start, _end), offer in zip(windows, offers):
            offered = [Tranche(int(t.watts), int(t.price)) for t in offer if t.watts > 0]
            offered.sort(key=lambda t: t.price)
            if len(offered) > MAX_TRANCHES_PER_HOUR:
                raise ValueError(f"the offer for the hour from {hour_start} has {len(offered)} tranches; a "
                                 f"forecast carries at most {MAX_TRANCHES_PER_HOUR} per hour")
            hours.append(tuple(offered))
        return tuple(hours)

    def build(self, day_start: int) -> FlexForecast:
        """Sign the forecast of the 24 hours from `day_start` with the next sequence, and keep it as
        the pending one (persisted before anything is sent)."""
        if day_start % SECONDS_PER_HOUR:
            raise ValueError(f"day_start {day_start} is not a whole hour")
        hours = self._hours(day_start)
        sequence = max(self._state["sequence"] + 1, int(self.clock()))
        forecast = FlexForecast(self.site, self.zone, day_start, hours, sequence).signed(
            self.site_key, self.chain_id, self.registry)
        encoded = encode_forecast(forecast)
        decode_forecast(encoded)  # the protocol's bounds hold before it is persisted or sent
        self._state.update(sequence=sequence, pending=encoded)
        self._save()
        log.info("built the forecast from %d (sequence %d, %d W at most in an hour)", day_start, sequence,
                 max((sum(t.watts for t in hour) for hour in hours), default=0))
        return forecast

    # delivering -------------------------------------------------------------------------------------

    def publish(self, day_start: int | None = None) -> bool:
        """Deliver the forecast of the day from `day_start` (default: the next UTC midnight), building
        it unless it is pending or already acknowledged; True once the API holds it."""
        due = next_day_start(self.clock()) if day_start is None else day_start
        pending = self._state["pending"]
        if pending is not None and pending["start"] < due:
            log.info("the pending forecast from %d is superseded by the one from %d", pending["start"], due)
            pending = None
        if pending is None:
            if self._state["acknowledged_start"] == due:
                return True
            self.build(due)
            pending = self._state["pending"]
        return self._send(pending)

    def _send(self, payload: dict[str, Any]) -> bool:
        url = self.api_url + FORECAST_PATH
        try:
            response = self.http.post(url, json=payload)
        except httpx.HTTPError as error:
            log.warning("forecast %d not delivered (%s: %s); kept for the next try", payload["sequence"],
                        type(error).__name__, error)
            return False
        if response.is_success:
            self._state.update(pending=None, acknowledged_start=payload["start"])
            self._save()
            log.info("forecast %d from %d acknowledged by the API", payload["sequence"], payload["start"])
            return True
        code, detail = _problem(response)
        if response.status_code >= 500 or response.status_code == 429 or code in RETRYABLE_CODES:
            log.warning("forecast %d refused for now (%d %s: %s); kept for the next try", payload["sequence"],
                        response.status_code, code, detail)
            return False
        log.error("forecast %d refused (%d %s: %s); dropped", payload["sequence"], response.status_code, code, detail)
        self._state.update(pending=None)
        self._save()
        return False

    def close(self) -> None:
        """Close the HTTP client."""
        self.http.close()


def _problem(response: httpx.Response) -> tuple[str, str]:
    try:
        body = response.json()
    except ValueError:
        return "", response.text[:200]
    if not isinstance(body, dict):
        return "", str(body)[:200]
    return str(body.get("code", ""))[:60], str(body.get("detail", ""))[:300]
