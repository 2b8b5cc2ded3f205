"""Per-device baseline records: what both engines report for a device, assembled one way.

The rule: a device's record (`DeviceBaseline`), its adjustment record and its reasons are built
only here, so the plain-Python and the vectorised engine cannot drift apart in what they report.
Reasons are listed in `oracle.reasons.Reason` order.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from oracle import quality as q
from oracle.baselines.spec import BaselineSpec, Plan
from oracle.reasons import Reason
from protocol.units import BPS


@dataclass(frozen=True)
class DeviceBaseline:
    """The baseline engine's verdict for one device over the event intervals."""

    device: str
    baseline_wh: list[int]
    actual_wh: list[int]
    curtailed_wh: list[int]
    adjustment: dict
    quality: dict
    eligible: bool
    reasons: list[str]
    flags: list[str]
    selected_days: list[str]

    def to_dict(self) -> dict:
        """The JSON record (the per-device entry of a published report's baselines)."""
        return {
            "device": self.device,
            "baseline_wh": list(self.baseline_wh),
            "actual_wh": list(self.actual_wh),
            "curtailed_wh": list(self.curtailed_wh),
            "adjustment": dict(self.adjustment),
            "quality": dict(self.quality),
            "eligible": self.eligible,
            "reasons": list(self.reasons),
            "flags": list(self.flags),
            "selected_days": list(self.selected_days),
        }


def adjustment_record(
    spec: BaselineSpec,
    applied: bool,
    *,
    num: int = 1,
    den: int = 1,
    additive: int = 0,
    uncapped: int = 0,
    limit: int = 0,
    bound: str = "none",
    actual: int = 0,
    unadjusted: int = 0,
) -> dict:
    """The JSON record of a device's same-day adjustment (`kind` only when the spec has none)."""
    if not spec.adjusted:
        return {"kind": "none"}
    if not applied:
        return {"kind": spec.adjustment, "applied": False}
    out: dict = {"kind": spec.adjustment, "applied": True}
    if spec.adjustment == "ratio":
        g = math.gcd(num, den) or 1
        out.update({"factor": f"{num // g}/{den // g}", "factor_bps": num * BPS // den})
    else:
        out.update({"additive_wh": additive, "uncapped_wh": uncapped, "limit_wh": limit})
    out.update(
        {
            "capped": bound != "none",
            "bound": bound,
            "cap_bps": spec.cap_bps,
            "window_actual_wh": actual,
            "window_baseline_wh": unadjusted,
        }
    )
    return out


def finish_record(
    device: str,
    plan: Plan,
    baseline: list[int] | None,
    actual: list[int],
    adjustment: dict,
    adj_missing: bool,
    flags: list[str],
    selected: list[str],
    quality: q.QualityResult,
    curtailed: list[int] | None = None,
) -> DeviceBaseline:
    """Assemble the record; `selected` holds ISO dates, `curtailed` may be passed in precomputed."""
    bits = Reason(0)
    if baseline is None:
        bits |= Reason.INSUFFICIENT_HISTORY
        baseline = [0] * plan.length
    if adj_missing:
        bits |= Reason.MISSING_ADJUSTMENT_READINGS
    if min(actual) < 0:
        bits |= Reason.MISSING_EVENT_READINGS
    if quality.reason_flag is not None:
        bits |= quality.reason_flag
    reasons = Reason.codes(bits)
    if curtailed is None:
        curtailed = [max(0, b - a) if a >= 0 else 0 for b, a in zip(baseline, actual)]
    return DeviceBaseline(
        device,
        baseline,
        actual,
        curtailed,
        adjustment,
        quality.to_dict(),
        not reasons,
        reasons,
        flags,
        sorted(selected),
    )
