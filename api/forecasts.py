"""Sites' day-ahead flexibility forecasts (protocol.forecast): the table that keeps each site's
latest, the rule that admits one, and the aggregation into a zone's supply curve.

Admission (`ForecastStore.admit`, after the route checked the signature): the site must be an
indexed, active device of kind site_meter in the forecast's zone, no hour may offer more than the
site meter's rating (its `capacity_w`), and the sequence must be above the stored one for that
site. An exact re-send of the stored forecast (same sequence and signature) is a duplicate,
answered without change, so a node that lost an acknowledgement can retry. Forecasts are off-chain
data, like owner profiles: never journalled, and read against the current `devices` rows, so a site
unregistered, deactivated or reorged away stops counting at once.

The supply curve of zone Z over the window [start, end) (`supply_curve`):
- the window's hours are the whole hours overlapping it: from floor(start / 1 h) to ceil(end / 1 h);
- a site counts only if it is an active site meter of zone Z and its latest forecast covers every
  one of those hours; `sites` is how many count;
- a counted site's supply at price p is the minimum, over the window's hours, of the watts of its
  tranches priced at or below p in that hour (what it can hold through the whole window);
- the curve has one point per distinct tranche price of the counted sites in the window's hours,
  prices ascending, each point the sum of the counted sites' supply at that price. Each site's supply
  is non-decreasing in p, so the curve's watts are too. All integer W and token base units per kWh.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import BigInteger, Column, Index, Integer, Text, and_, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Field

from api.models import ApiTable, api_metadata
from protocol.forecast import FlexForecast, Tranche
from protocol.kinds import DeviceKind
from protocol.units import SECONDS_PER_HOUR


class SiteForecast(ApiTable, table=True):
    """A site's latest signed forecast: its window, sequence, hourly tranches (JSON
    `[[[watts, price], ...], ...]`, prices as decimal strings) and signature."""

    __tablename__ = "site_forecasts"
    __table_args__ = (Index("ix_site_forecasts_zone", "zone", "start", "end"),)

    site: str = Field(primary_key=True, max_length=42)
    zone: int = Field(sa_column=Column(BigInteger, nullable=False))
    start: int = Field(sa_column=Column(BigInteger, nullable=False))
    end: int = Field(sa_column=Column(BigInteger, nullable=False))
    hours: int = Field(sa_column=Column(Integer, nullable=False))
    sequence: int = Field(sa_column=Column(BigInteger, nullable=False))
    offers: str = Field(sa_column=Column(Text, nullable=False))
    signature: str = Field(max_length=200)
    received_at: int = Field(sa_column=Column(BigInteger, nullable=False))


FORECASTS = SiteForecast.__table__
DEVICES = api_metadata.tables["devices"]


class Refused(Exception):
    """A forecast the API does not admit: HTTP status, reason code and what was wrong."""

    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def encode_offers(hours: Iterable[Iterable[Tranche]]) -> str:
    """The stored JSON of a forecast's hourly tranches (prices as strings: they may pass 2**63)."""
    return json.dumps([[[t.watts, str(t.price)] for t in hour] for hour in hours], separators=(",", ":"))


def decode_offers(text: str) -> tuple[tuple[Tranche, ...], ...]:
    """The hourly tranches of a stored forecast."""
    return tuple(tuple(Tranche(int(w), int(p)) for w, p in hour) for hour in json.loads(text))


# ------------------------------------------------------------------------------------------------
# the supply curve (pure)


@dataclass(frozen=True)
class Covering:
    """One site's forecast as the curve reads it: from `start` (a whole hour), an entry per hour."""

    start: int
    hours: tuple[tuple[Tranche, ...], ...]


def window_hours(start: int, end: int) -> tuple[int, int]:
    """The whole hours overlapping [start, end): (first hour's start, last hour's end)."""
    first = start // SECONDS_PER_HOUR * SECONDS_PER_HOUR
    last = -(-end // SECONDS_PER_HOUR) * SECONDS_PER_HOUR
    return first, last


def site_supply(covering: Covering, first: int, last: int) -> dict[int, int] | None:
    """The site's supply at each of its tranche prices over the hours [first, last) (the minimum over
    those hours of the watts priced at or below the price); None if its forecast misses an hour."""
    end = covering.start + SECONDS_PER_HOUR * len(covering.hours)
    if covering.start > first or end < last or last <= first:
        return None
    offset = (first - covering.start) // SECONDS_PER_HOUR
    hours = covering.hours[offset: offset + (last - first) // SECONDS_PER_HOUR]
    prices = sorted({t.price for hour in hours for t in hour})
    return {price: min(sum(t.watts for t in hour if t.price <= price) for hour in hours) for price in prices}


def supply_curve(coverings: Iterable[Covering], start: int, end: int) -> tuple[int, list[tuple[int, int]]]:
    """(sites counted, [(price, watts), ...] prices ascending) of the module docstring's rule."""
    first, last = window_hours(start, end)
    sites = 0
    steps: dict[int, int] = defaultdict(int)  # price -> the watts the curve gains at that price
    for covering in coverings:
        supply = site_supply(covering, first, last)
        if supply is None:
            continue
        sites += 1
        previous = 0
        for price in sorted(supply):
            steps[price] += supply[price] - previous
            previous = supply[price]
    curve, total = [], 0
    for price in sorted(steps):
        total += steps[price]
        curve.append((price, total))
    return sites, curve


# ------------------------------------------------------------------------------------------------
# the store


@dataclass(frozen=True)
class SiteMeter:
    """What admission needs of the site's device row."""

    kind: int
    zone: int
    active: bool
    capacity_w: int


class ForecastStore:
    """Admits forecasts (latest per site) and reads a zone's supply curve from the mirror's database."""

    def __init__(self, engine: Engine):
        self.engine = engine

    def site_meter(self, site: str) -> SiteMeter | None:
        """The indexed device row of `site`, if registered."""
        with self.engine.connect() as connection:
            row = connection.execute(select(DEVICES.c.kind, DEVICES.c.zone, DEVICES.c.active, DEVICES.c.capacity_w,
                                            DEVICES.c.registered).where(DEVICES.c.address == site)).first()
        if row is None or not row.registered:
            return None
        return SiteMeter(int(row.kind), int(row.zone), bool(row.active), int(row.capacity_w))

    def check_site(self, forecast: FlexForecast) -> None:
        """Refused unless the site is an active site meter of the forecast's zone whose rating covers
        every hour's offer."""
        meter = self.site_meter(forecast.site)
        if meter is None:
            raise Refused(403, "unknown_device", f"{forecast.site} is not a registered device (or not indexed yet)")
        if meter.kind != DeviceKind.SITE_METER:
            raise Refused(403, "forbidden", f"{forecast.site} is a {DeviceKind(meter.kind).label}, not a site "
                                            "meter; only a site meter forecasts its site")
        if not meter.active:
            raise Refused(403, "device_inactive", f"the site meter {forecast.site} is deactivated")
        if meter.zone != forecast.zone:
            raise Refused(422, "zone_mismatch", f"the forecast is for zone {forecast.zone}; the site meter "
                                                f"{forecast.site} is registered in zone {meter.zone}")
        for index, hour in enumerate(forecast.hours):
            offered = sum(t.watts for t in hour)
            if offered > meter.capacity_w:
                raise Refused(422, "watts_out_of_range", f"hour {index} offers {offered} W, above the site "
                                                         f"meter's rating of {meter.capacity_w} W")

    def admit(self, forecast: FlexForecast, received_at: int) -> Literal["stored", "duplicate"]:
        """Store `forecast` as its site's latest (its signature already checked); Refused says why not."""
        self.check_site(forecast)
        values = {"zone": forecast.zone, "start": forecast.start, "end": forecast.end, "hours": len(forecast.hours),
                  "sequence": forecast.sequence, "offers": encode_offers(forecast.hours),
                  "signature": "0x" + forecast.signature.hex(), "received_at": received_at}
        for _attempt in range(3):
            try:
                outcome = self._store(forecast, values)
            except IntegrityError:
                continue  # another request stored this site's first forecast meanwhile: decide again
            if outcome is not None:
                return outcome
        raise Refused(409, "sequence_conflict", f"concurrent forecasts for {forecast.site}; send it again")

    def _store(self, forecast: FlexForecast, values: dict) -> Literal["stored", "duplicate"] | None:
        """One attempt: insert, replace (compare-and-set on the stored sequence) or refuse; None when a
        concurrent write changed the row in between."""
        with self.engine.begin() as connection:
            stored = connection.execute(select(FORECASTS.c.sequence, FORECASTS.c.signature)
                                        .where(FORECASTS.c.site == forecast.site)).first()
            if stored is None:
                connection.execute(FORECASTS.insert().values(site=forecast.site, **values))
                return "stored"
            if stored.sequence == forecast.sequence and stored.signature == values["signature"]:
                return "duplicate"
            if stored.sequence >= forecast.sequence:
                raise Refused(409, "sequence_conflict", f"sequence {forecast.sequence} is not above the stored "
                                                        f"forecast's {stored.sequence} for {forecast.site}")
            changed = connection.execute(update(FORECASTS).where(and_(
                FORECASTS.c.site == forecast.site, FORECASTS.c.sequence == stored.sequence)).values(**values))
            return "stored" if changed.rowcount == 1 else None

    def coverings(self, zone: int, first: int, last: int) -> list[Covering]:
        """The latest forecasts of zone `zone`'s active site meters that cover [first, last)."""
        query = (select(FORECASTS.c.start, FORECASTS.c.offers)
                 .join(DEVICES, DEVICES.c.address == FORECASTS.c.site)
                 .where(FORECASTS.c.zone == zone, FORECASTS.c.start <= first, FORECASTS.c.end >= last,
                        DEVICES.c.zone == zone, DEVICES.c.active.is_(True),
                        DEVICES.c.kind == int(DeviceKind.SITE_METER))
                 .order_by(FORECASTS.c.site))
        with self.engine.connect() as connection:
            return [Covering(int(row.start), decode_offers(row.offers)) for row in connection.execute(query)]

    def supply(self, zone: int, start: int, end: int) -> dict:
        """The zone's supply curve over [start, end) as the API serves it (module docstring's rule)."""
        first, last = window_hours(start, end)
        sites, curve = supply_curve(self.coverings(zone, first, last), first, last)
        return {"zone": zone, "start": first, "end": last, "sites": sites,
                "curve": [{"price": str(price), "watts": watts} for price, watts in curve]}
