"""The plain-Python baseline engine: one device at a time, Python integers throughout.

The rule: this is the readable statement of the baseline rules (see `oracle.baselines`), written
independently of the numpy engine in `vectorised`; the tests check that both agree on every
method and adjustment. It is the per-device API (`compute_device_baseline`), not the fast path.
"""

from __future__ import annotations

from collections.abc import Mapping

from oracle import quality as q
from oracle.baselines.records import DeviceBaseline, adjustment_record, finish_record
from oracle.baselines.spec import (
    CAISO,
    HIGH_X_OF_Y,
    METER_BEFORE_AFTER,
    BaselineSpec,
    check_reading,
    plan_event,
)
from oracle.reasons import Flag
from protocol.units import BPS, SECONDS_PER_DAY


def _trunc_div(numerator: int, divisor: int) -> int:
    """Signed quotient rounded toward zero (divisor > 0)."""
    return numerator // divisor if numerator >= 0 else -((-numerator) // divisor)


def _bound(actual: int, unadjusted: int, cap_bps: int) -> str:
    """Whether the exact uncapped adjustment exceeds the cap: "up", "down" or "none"."""
    if (actual - unadjusted) * BPS > cap_bps * unadjusted:
        return "up"
    if (unadjusted - actual) * BPS > cap_bps * unadjusted:
        return "down"
    return "none"


def compute_device_baseline(
    spec: BaselineSpec, readings: Mapping[int, int], event_start: int, event_end: int, device: str = "device"
) -> DeviceBaseline:
    """Baseline of one device from `readings` {interval start (unix s): Wh}; see the module docstring."""
    plan = plan_event(spec, event_start, event_end)
    interval = spec.interval_seconds
    for timestamp, wh in readings.items():
        check_reading(device, timestamp, wh, interval)
    length = plan.length

    def times(offset: int, width: int, k: int) -> list[int]:
        first = event_start + offset * interval - k * SECONDS_PER_DAY
        return [first + i * interval for i in range(width)]

    def values(offset: int, width: int, k: int) -> list[int] | None:
        out = [readings.get(t) for t in times(offset, width, k)]
        return None if any(v is None for v in out) else out  # type: ignore[return-value]

    def usable(k: int) -> bool:
        return all(values(off, w, k) is not None for off, w in ((0, length),) + plan.segments)

    usable_days = [(k, day) for k, day in plan.candidates if usable(k)]
    day_of = dict(plan.candidates)

    def predict(target_k: int):
        """(prediction or None, adjustment dict, adj_missing, flags, selected ks) for the day target_k."""
        if spec.method == METER_BEFORE_AFTER:
            before = values(-spec.before_intervals, spec.before_intervals, target_k)
            if before is None:
                return None, adjustment_record(spec, False), False, [], []
            return (
                [sum(before) // spec.before_intervals] * length,
                adjustment_record(spec, False),
                False,
                [],
                [],
            )
        pool = [k for k, _ in usable_days if target_k < k <= target_k + spec.lookback_days][: plan.wanted]
        if len(pool) < plan.required:
            return None, adjustment_record(spec, False), False, [], []
        total = {k: sum(values(0, length, k)) for k in pool}  # type: ignore[arg-type]
        if spec.method == CAISO:
            chosen = list(pool)
        elif spec.method == HIGH_X_OF_Y:
            chosen = sorted(pool, key=lambda k: (-total[k], k))[: spec.x]
        else:
            lowest = min(pool, key=lambda k: (total[k], -k))
            rest = [k for k in pool if k != lowest]
            highest = max(rest, key=lambda k: (total[k], k))
            chosen = [k for k in rest if k != highest]

        def unadjusted(offset: int, width: int) -> list[int]:
            columns = [values(offset, width, k) for k in chosen]
            return [sum(col[i] for col in columns) // len(chosen) for i in range(width)]  # type: ignore[index]

        base = unadjusted(0, length)
        if not spec.adjusted:
            return base, adjustment_record(spec, False), False, [], chosen
        actual_w = values(plan.adj_offset, plan.adj_width, target_k)
        if actual_w is None:
            return base, adjustment_record(spec, False), True, [], chosen
        a_sum, u_sum = sum(actual_w), sum(unadjusted(plan.adj_offset, plan.adj_width))
        bound = _bound(a_sum, u_sum, spec.cap_bps)
        if spec.adjustment == "ratio":
            if u_sum == 0:
                num, den, bound = 1, 1, "none"
            elif bound == "up":
                num, den = BPS + spec.cap_bps, BPS
            elif bound == "down":
                num, den = BPS - spec.cap_bps, BPS
            else:
                num, den = a_sum, u_sum
            prediction = [b * num // den for b in base]
            adjustment = adjustment_record(
                spec, True, num=num, den=den, bound=bound, actual=a_sum, unadjusted=u_sum
            )
        else:
            uncapped = _trunc_div(a_sum - u_sum, plan.adj_width)
            limit = spec.cap_bps * u_sum // (BPS * plan.adj_width)
            d = limit if bound == "up" else -limit if bound == "down" else uncapped
            prediction = [max(0, b + d) for b in base]
            adjustment = adjustment_record(
                spec,
                True,
                additive=d,
                uncapped=uncapped,
                limit=limit,
                bound=bound,
                actual=a_sum,
                unadjusted=u_sum,
            )
        flag_bits = Flag(0)
        if bound == "up":
            flag_bits |= Flag.ADJUSTMENT_CAPPED_UP
        if (a_sum - u_sum) * BPS > spec.jump_flag_bps * u_sum:
            flag_bits |= Flag.PRE_EVENT_LOAD_JUMP
        flags = Flag.codes(flag_bits)
        return prediction, adjustment, False, flags, chosen

    baseline, adjustment, adj_missing, flags, chosen = predict(0)
    actual = [readings.get(t, -1) for t in times(0, length, 0)]

    pairs = []
    for k, day in [(k, d) for k, d in usable_days if k <= spec.lookback_days][: spec.quality_days]:
        prediction = predict(k)[0]
        if prediction is not None:
            pairs.append((day.isoformat(), prediction, values(0, length, k)))
    quality = q.assess(pairs, spec.max_rrmse_bps)  # type: ignore[arg-type]
    return finish_record(
        device,
        plan,
        baseline,
        actual,
        adjustment,
        adj_missing,
        flags,
        [day_of[k].isoformat() for k in chosen],
        quality,
    )
