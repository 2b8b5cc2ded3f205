"""The node's own estimate of what it will be measured against: its devices' recent use in the window.

The oracles pay curtailment against a baseline built from a device's *previous days* (see the
oracle's baseline rules); committing more than that baseline can only lower the delivered/committed
ratio, and under half of it costs stake. So before committing, the node looks at what each device
actually drew in the same window on recent days, from the readings it signed itself (its outbox),
and commits no more than that. This is an estimate for the node's decision, not the oracle's rule:
it mirrors a high-X-of-Y day selection (the highest `keep` of the `days` most recent complete days)
without the same-day adjustment or the quality gate.
"""

from __future__ import annotations

from node.outbox import Outbox

DAY = 86_400


def recent_window_w(outbox: Outbox, device: str, start: int, end: int, days: int = 5, keep: int = 4,
                    look_back: int = 14) -> int | None:
    """Average W `device` drew in [start, end) on its recent complete days (None with fewer than 2)."""
    if end <= start:
        return None
    totals = []
    for k in range(1, look_back + 1):
        readings = outbox.readings(device, start - k * DAY, end - k * DAY)
        if not readings:
            continue
        interval = next(iter(readings.values()))[1]
        expected = range(start - k * DAY, end - k * DAY, interval)
        if any(t not in readings for t in expected):
            continue  # an incomplete day says nothing reliable
        totals.append(sum(readings[t][0] for t in expected))
        if len(totals) == days:
            break
    if len(totals) < 2:
        return None
    chosen = sorted(totals, reverse=True)[:keep]
    return (sum(chosen) // len(chosen)) * 3_600 // (end - start)
