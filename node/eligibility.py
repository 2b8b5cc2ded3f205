"""Why a device cannot earn yet, and from when it will: the warnings of `node status` and the log.

Each warning rests on a rule the network really applies, read from where the network states it:

* `not_registered` / `inactive`: the DeviceRegistry holds no active record of the device, so the
  oracles refuse its readings and commitments.
* `bond_insufficient`: the oracles count a commitment only when the owner's free bond (bonded above
  its lock) reaches `Staking.requiredBond` of the committed watts (the oracle's bond cover; read
  from the Staking contract); the node commits up to its devices' flexible capacity.
* `insufficient_history`: the oracles pay curtailment against a baseline built from the device's
  previous like-days (weekdays for a weekday event, weekend days for a weekend one) within a
  look-back, and their quality gate tests it on earlier days again; a device with fewer usable days
  than they need is ineligible (`insufficient_history`, `insufficient_history_for_quality`) and
  earns nothing. How many days they need is what the oracles publish at `GET /v1/baseline-rules`
  (`historyDaysNeeded` per day type, `lookbackDays`, optional per-zone rules); the node counts the
  days it has from its own signed readings (its outbox): a UTC day counts when every interval of it
  was metered. Without a published rule the node can only say a device has no complete day yet.

There is no capability test and no minimum offer size in the protocol, so the node warns of neither.
A warning says when the device will be able to earn, where that can be known: for history, the
date on which, metered every day from now, it will have the days needed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

from pydantic import BaseModel, Field, ValidationError

from node.outbox import Outbox
from protocol.units import format_units

DAY = 86_400
MAX_DAYS = 366


class DaysNeeded(BaseModel):
    """Usable like-days of history a device needs, per day type of the event."""

    model_config = {"extra": "ignore"}

    weekday: int = Field(ge=0, le=MAX_DAYS)
    weekend: int = Field(ge=0, le=MAX_DAYS)


class ZoneRule(BaseModel):
    """A zone's own program."""

    model_config = {"extra": "ignore"}

    historyDaysNeeded: DaysNeeded
    lookbackDays: int = Field(45, ge=1, le=MAX_DAYS)
    method: str = Field("", max_length=64)


class PublishedRules(ZoneRule):
    """An oracle's `GET /v1/baseline-rules` body (fields beyond these are ignored)."""

    zones: dict[int, ZoneRule] = Field(default_factory=dict, max_length=1_000)


@dataclass(frozen=True)
class HistoryRule:
    """How much history the network's oracles need for a device of one zone."""

    weekday: int
    weekend: int
    lookback_days: int
    method: str = ""


def rule_for_zone(body: Any, zone: int) -> HistoryRule | None:
    """The rule of `zone` in an oracle's published baseline rules (None if the body is not one)."""
    try:
        rules = PublishedRules.model_validate(body)
    except ValidationError:
        return None
    chosen: ZoneRule = rules.zones.get(zone, rules)
    return HistoryRule(chosen.historyDaysNeeded.weekday, chosen.historyDaysNeeded.weekend, chosen.lookbackDays,
                       chosen.method)


def fetch_rule(oracles: list[str], zone: int, fetch: Callable[[str], tuple[int, Any]]) -> HistoryRule | None:
    """The strictest rule the oracles publish for `zone` (each oracle decides alone, so a device must
    satisfy all of them); None when none publishes one."""
    found = []
    for url in oracles:
        status, body = fetch(f"{url.rstrip('/')}/v1/baseline-rules")
        rule = rule_for_zone(body, zone) if status == 200 else None
        if rule is not None:
            found.append(rule)
    if not found:
        return None
    return HistoryRule(max(r.weekday for r in found), max(r.weekend for r in found),
                       min(r.lookback_days for r in found), found[0].method)


@dataclass(frozen=True)
class EarningWarning:
    """Why a device (or the owner, device None) cannot earn yet, and from when it will (ISO date)."""

    code: str
    message: str
    device: str | None = None
    until: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """As JSON (`node status --json`)."""
        return asdict(self)


def _weekend(day: date) -> bool:
    return day.weekday() >= 5


def complete_days(outbox: Outbox, device: str, now: float, lookback_days: int) -> list[date]:
    """The UTC days of the last `lookback_days` (before today) on which every interval of `device`
    was metered, from the readings it signed (its outbox)."""
    today = int(now) // DAY * DAY
    readings = outbox.readings(device, today - lookback_days * DAY, today)
    per_day: dict[int, int] = {}
    interval = 0
    for start, (_wh, seconds) in readings.items():
        per_day[start // DAY * DAY] = per_day.get(start // DAY * DAY, 0) + 1
        interval = seconds
    if not interval:
        return []
    full = DAY // interval
    return sorted(datetime.fromtimestamp(day, timezone.utc).date() for day, count in per_day.items() if count >= full)


def enough_on(have: int, needed: int, weekend: bool, today: date) -> date:
    """The first date by which a device with `have` usable days of that type, metered every day
    from `today` on (the first day that can still be complete), has `needed` of them before it."""
    day = today
    while have < needed:
        if _weekend(day) == weekend:
            have += 1
        day += timedelta(days=1)
    return max(day, today)


def history_warning(outbox: Outbox, device: str, now: float, rule: HistoryRule | None,
                    default_lookback_days: int = 45) -> EarningWarning | None:
    """`insufficient_history` when the device has fewer usable days than the oracles need for a
    weekday or a weekend event (None when it has enough for both)."""
    today = datetime.fromtimestamp(int(now), timezone.utc).date()
    midnight = int(now) // DAY * DAY
    if midnight not in outbox.readings(device, midnight, midnight + 1):
        today += timedelta(days=1)  # today was not metered from its start: it will not be a complete day
    days = complete_days(outbox, device, now, rule.lookback_days if rule else default_lookback_days)
    weekdays = sum(1 for d in days if not _weekend(d))
    weekend_days = len(days) - weekdays
    if rule is None:
        if days:
            return None
        return EarningWarning("insufficient_history", "no complete day of readings yet: the oracles pay against a "
                              "baseline from its previous days, so it earns nothing until it has enough (the oracles "
                              "do not publish how many they need)", device)
    short = []
    dates = []
    for kind, have, needed, weekend in (("weekday", weekdays, rule.weekday, False),
                                        ("weekend", weekend_days, rule.weekend, True)):
        if have < needed:
            when = enough_on(have, needed, weekend, today)
            dates.append(when)
            short.append(f"{have} of the {needed} {'weekdays' if not weekend else 'weekend days'} a {kind} event "
                         f"needs (enough from {when.isoformat()})")
    if not short:
        return None
    method = f" ({rule.method})" if rule.method else ""
    return EarningWarning("insufficient_history",
                          f"not enough history for the oracles' baseline{method} in the last {rule.lookback_days} "
                          f"days: {'; '.join(short)}; it earns nothing for those events until then",
                          device, max(dates).isoformat())


def registration_warning(device: str, registered: bool, active: bool) -> EarningWarning | None:
    """`not_registered` or `inactive` from the device's DeviceRegistry record."""
    if not registered:
        return EarningWarning("not_registered", "not registered on-chain: the oracles refuse its readings and "
                              "commitments (run `negawatt node register`)", device)
    if not active:
        return EarningWarning("inactive", "deactivated in the DeviceRegistry: the oracles refuse its readings and "
                              "commitments", device)
    return None


def bond_warning(free_bond: int, required: int, capacity_w: int, symbol: str, decimals: int) -> EarningWarning | None:
    """`bond_insufficient` when the owner's free bond is below what its devices' capacity needs."""
    if free_bond >= required:
        return None
    return EarningWarning("bond_insufficient",
                          f"the owner's free bond {format_units(free_bond, decimals, symbol)} is below the "
                          f"{format_units(required, decimals, symbol)} that commitments of {capacity_w} W need: "
                          f"commitments it does not cover earn nothing (run `negawatt node register` to bond more)")


class WarningLog:
    """Logs each warning once (per device and code) and once more when it clears, not every loop."""

    def __init__(self, log: Any):
        self.log = log
        self.shown: dict[tuple[str | None, str], EarningWarning] = {}

    def update(self, warnings: list[EarningWarning]) -> None:
        """Log the warnings not shown yet, and those that no longer hold."""
        current = {(w.device, w.code): w for w in warnings}
        for key, warning in current.items():
            if key not in self.shown:
                self.log.warning("%s cannot earn yet (%s): %s", warning.device or "the owner", warning.code,
                                 warning.message)
        for key in set(self.shown) - set(current):
            self.log.info("%s: %s no longer holds", key[0] or "the owner", key[1])
        self.shown = current
