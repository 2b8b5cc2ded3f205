"""Sites' and zones' delivery records, read from finalized report documents (the clearing's inputs).

The rule:
  - a settlement unit's record (its site, or a device without a site) is the sum, over the last
    RELIABILITY_EPOCHS finalized reports, of its outcomes' deliveredWh and committedWh (accepted
    energy, for a cleared request): `protocol.clearing.Reliability(delivered_wh, accepted_wh)`;
  - a zone's history is one Reliability per settled request of that zone in those reports, newest
    report first, at most ZONE_HISTORY_REQUESTS of them; `protocol.clearing.margin_bps_from_history`
    turns it into the over-procurement margin.
Finalized documents are the same on every oracle (their digests are on chain), so every oracle
ranks and margins the same way; an oracle that lacks a final document (it joined later) may clear
differently and then simply does not sign the others' allocation.
"""

from __future__ import annotations

from collections.abc import Callable

from oracle.report_store import ReportStore
from protocol.clearing import Reliability

RELIABILITY_EPOCHS = 50
ZONE_HISTORY_REQUESTS = 20


def delivery_records(store: ReportStore, latest_epoch: int, zone_of: Callable[[int], int | None]
                     ) -> tuple[dict[str, Reliability], dict[int, list[Reliability]]]:
    """(records per settlement unit, history per zone) from the final reports of the epochs up to
    `latest_epoch` (see the module rule). `zone_of` gives a request's zone (None: unknown, skipped)."""
    units: dict[str, tuple[int, int]] = {}
    zones: dict[int, list[Reliability]] = {}
    for epoch in range(latest_epoch, max(0, latest_epoch - RELIABILITY_EPOCHS), -1):
        document = store.final(epoch)
        if document is None:
            continue
        for outcome in document.requests:
            delivered = accepted = 0
            for device in outcome.devices:
                got, asked = units.get(device.device, (0, 0))
                units[device.device] = (got + device.deliveredWh, asked + device.committedWh)
                delivered += device.deliveredWh
                accepted += device.committedWh
            zone = zone_of(outcome.requestId)
            history = zones.setdefault(zone, []) if zone is not None else None
            if history is not None and accepted > 0 and len(history) < ZONE_HISTORY_REQUESTS:
                history.append(Reliability(delivered, accepted))
    return {unit: Reliability(*record) for unit, record in units.items()}, zones
