"""Reading OCPP meter values (1.6J and 2.0.1 alike, snake_case as the `ocpp` library hands them over).

A meter value is {timestamp, sampled_value: [{value, measurand, unit | unit_of_measure, phase, ...}]}.
The node needs the active import power (W) and the active import energy register (Wh): a total
(no phase) is preferred; per-phase values (L1, L2, L3) are added up when there is no total.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

ENERGY = "Energy.Active.Import.Register"
POWER = "Power.Active.Import"
_SCALE = {"Wh": Decimal(1), "kWh": Decimal(1000), "W": Decimal(1), "kW": Decimal(1000)}


def _unit_factor(sample: dict[str, Any], default: str) -> Decimal:
    unit, multiplier = sample.get("unit"), 0
    measure = sample.get("unit_of_measure")  # 2.0.1
    if isinstance(measure, dict):
        unit, multiplier = measure.get("unit", unit), int(measure.get("multiplier", 0) or 0)
    return _SCALE.get(unit or default, Decimal(1)) * Decimal(10) ** multiplier


def _value(sample: dict[str, Any]) -> Decimal | None:
    try:
        number = Decimal(str(sample.get("value")))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def parse_meter_values(meter_values: list[dict[str, Any]]) -> tuple[Decimal | None, Decimal | None]:
    """(power W, energy Wh) from the latest meter value carrying each (None where absent)."""
    power = energy = None
    for meter_value in meter_values or []:
        sums: dict[str, dict[str, Decimal]] = {POWER: {}, ENERGY: {}}
        for sample in meter_value.get("sampled_value", []) or []:
            measurand = sample.get("measurand", ENERGY)  # OCPP's default measurand
            if measurand not in sums:
                continue
            value = _value(sample)
            if value is None:
                continue
            phase = sample.get("phase") or "total"
            if phase.startswith("L") and "-" in phase:
                continue  # line-to-line values are voltages, not shares of the total
            factor = _unit_factor(sample, "W" if measurand == POWER else "Wh")
            sums[measurand][phase] = value * factor
        for measurand, phases in sums.items():
            if not phases:
                continue
            total = phases.get("total")
            if total is None:
                total = sum((v for k, v in phases.items() if k in ("L1", "L2", "L3")), Decimal(0))
            if measurand == POWER:
                power = total
            else:
                energy = total
    return power, energy
