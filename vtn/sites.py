"""VENs -> sites: a VEN's resource is bound to a negawatt site whose site-meter key the facade
holds, and the VEN's usage reports become that site's signed meter batches, posted to the oracles.

Trust model (also in vtn/README.md):

- Key custody. The facade holds the site-meter keys (the clients file's `sites`); each is a device
  of kind `site_meter` registered on the DeviceRegistry by the site's owner, like a node's. A VEN
  never sees a key: the facade signs MeterBatch messages for it. So the facade, not the VEN, is
  the signer the oracles see, and the operator of the facade answers for what it signs.
- What a VEN can claim. Only usage (`USAGE` payloads, kWh per interval, or Wh with units `WH`) of
  its own resources that are bound to a site, in whole metering intervals aligned to their
  duration. The facade does not check the numbers against anything: a VEN is trusted for its
  meter readings as a node's meter is.
- What the oracles still verify. Everything they verify for a node: the signature against the
  registered, active device, the interval length and alignment, no future intervals, readings in
  range, sequences (replays and gaps), and overlaps. The settlement does not trust the VEN's
  claim of curtailment: it estimates the reduction from the readings against like-day baselines
  and the randomized holdout.
- The holdout. A VEN's site is a site like any other: when it takes part in a request it is drawn
  into the holdout by the same keccak(gate block hash, request id, site) rule, and a held-out site
  is the control group (owed nothing). The facade does not yet sign offers (commitments) for VEN
  sites, so today they are metered and serve as baseline history, but they are not dispatched.

A resource names its site with the attribute `NEGAWATT_SITE` ([address]) or gets the next free site
key; the served resource carries the binding as that attribute. Sequences come from the store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
from eth_utils import is_address, to_checksum_address

from protocol.messages import encode_batch
from protocol.meter import MAX_READING_WH, MeterBatch

log = logging.getLogger(__name__)

SITE_ATTRIBUTE = "NEGAWATT_SITE"
USAGE = "USAGE"
MAX_READINGS = 10_000


class SiteError(ValueError):
    """A usage report the facade cannot turn into meter batches (a 400 problem)."""


@dataclass
class Delivery:
    """What became of one report's usage: batches signed and each oracle's answers."""

    batches: int = 0
    readings: int = 0
    accepted: dict[str, int] = field(default_factory=dict)  # oracle URL -> batches it took (201 or 200)
    refused: dict[str, list[str]] = field(default_factory=dict)  # oracle URL -> problem codes

    def as_json(self) -> dict[str, Any]:
        """The delivery as the facade adds it to the stored report (`negawattDelivery`)."""
        return {"batches": self.batches, "readings": self.readings, "accepted": self.accepted,
                "refused": self.refused}


class SiteGateway:
    """Site keys, their binding to resources, and delivery of usage to the oracles."""

    def __init__(self, store: Any, site_keys: dict[str, bytes], chain_id: int | None, registry: str | None,
                 oracles: list[str], timeout: float = 10.0):
        self.store = store
        self.site_keys = site_keys
        self.chain_id = chain_id
        self.registry = registry
        self.oracles = [url.rstrip("/") for url in oracles]
        self._http = httpx.Client(timeout=timeout)

    def close(self) -> None:
        """Close the HTTP client."""
        self._http.close()

    def choose_site(self, attributes: list[dict] | None) -> str | None:
        """The site a new resource binds to: the one it names (which must be held and free), else the
        first free one; None when none is free. SiteError for a named site that cannot be used."""
        from vtn.models import attribute

        named = attribute(attributes, SITE_ATTRIBUTE)
        taken = self.store.bound_sites()
        if named:
            value = named[0]
            if not isinstance(value, str) or not is_address(value):
                raise SiteError(f"{SITE_ATTRIBUTE} must be one address")
            site = to_checksum_address(value)
            if site not in self.site_keys:
                raise SiteError(f"{SITE_ATTRIBUTE} {site}: the facade holds no key of that site")
            if site in taken:
                raise SiteError(f"{SITE_ATTRIBUTE} {site} is bound to another resource")
            return site
        free = sorted(set(self.site_keys) - taken)
        return free[0] if free else None

    def batches_of(self, site: str, resource: Any, units: str | None) -> list[MeterBatch]:
        """The unsigned meter batches of one report resource (vtn.models.ReportResource)."""
        readings: list[tuple[int, int, int]] = []  # (start, seconds, Wh)
        scale = Decimal(1) if (units or "KWH").upper() == "WH" else Decimal(1000)
        for interval in sorted(resource.intervals, key=lambda item: item.id):
            usage = [p for p in interval.payloads if p.type == USAGE]
            if not usage:
                continue
            period = interval.interval_period or resource.interval_period
            if period is None:
                raise SiteError(f"resource {resource.resource_name}: an interval with USAGE has no interval period")
            seconds = int(period.duration.total_seconds())
            if seconds <= 0 or period.start.timestamp() != int(period.start.timestamp()):
                raise SiteError(f"resource {resource.resource_name}: intervals need a positive duration and whole "
                                "seconds")
            start = int(period.start.timestamp()) + (0 if interval.interval_period else interval.id * seconds)
            if start % seconds:
                raise SiteError(f"resource {resource.resource_name}: interval {interval.id} starts at {start}, not a "
                                f"multiple of its {seconds} s duration (the oracles meter aligned intervals)")
            value = usage[0].values[0] if len(usage[0].values) == 1 else None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise SiteError(f"resource {resource.resource_name}: USAGE needs one number per interval")
            wh = int(Decimal(str(value)) * scale)
            if not 0 <= wh <= MAX_READING_WH:
                raise SiteError(f"resource {resource.resource_name}: USAGE {value} is out of range")
            readings.append((start, seconds, wh))
        if len(readings) > MAX_READINGS:
            raise SiteError(f"resource {resource.resource_name}: more than {MAX_READINGS} intervals")
        runs: list[list[tuple[int, int, int]]] = []
        for reading in readings:
            last = runs[-1][-1] if runs else None
            if last and last[1] == reading[1] and last[0] + last[1] == reading[0]:
                runs[-1].append(reading)
            elif last and reading[0] < last[0] + last[1]:
                raise SiteError(f"resource {resource.resource_name}: intervals overlap")
            else:
                runs.append([reading])
        return [MeterBatch(site, run[0][0], run[0][1], tuple(wh for _, _, wh in run), 0) for run in runs]

    def deliver(self, site: str, batches: list[MeterBatch]) -> Delivery:
        """Sign `batches` with the site's key (fresh sequences) and post each to every oracle."""
        delivery = Delivery()
        if not batches or self.chain_id is None or self.registry is None:
            return delivery
        first = self.store.next_sequences(site, len(batches))
        key = self.site_keys[site]
        for offset, batch in enumerate(batches):
            signed = MeterBatch(batch.device, batch.start, batch.interval_seconds, batch.readings,
                                first + offset).signed(key, self.chain_id, self.registry)
            delivery.batches += 1
            delivery.readings += len(batch.readings)
            payload = encode_batch(signed)
            for oracle in self.oracles:
                try:
                    response = self._http.post(f"{oracle}/v1/meter-batches", json=payload)
                except httpx.HTTPError as error:
                    delivery.refused.setdefault(oracle, []).append(f"unreachable: {error}"[:200])
                    continue
                if response.status_code in (200, 201):
                    delivery.accepted[oracle] = delivery.accepted.get(oracle, 0) + 1
                else:
                    code = _code(response)
                    delivery.refused.setdefault(oracle, []).append(code)
                    log.warning("oracle %s refused a batch of %s: %s", oracle, site, code)
        log.info("site %s: %d batches (%d readings) to %d oracles", site, delivery.batches, delivery.readings,
                 len(self.oracles))
        return delivery


def _code(response: httpx.Response) -> str:
    try:
        return str(response.json().get("code") or response.status_code)[:64]
    except ValueError:
        return str(response.status_code)
