"""GET /v1/baseline-rules: how much history this oracle's baseline and quality gate need.

A node tells its owner when a new device will be able to earn (node.eligibility); it can only do so
honestly if the oracles say what they require. The rule published here is the one the settlement
applies: a baseline needs `days_required` usable like-days of the event's type, and the quality gate
needs at least `MIN_PLACEBO_DAYS` placebo days that each have a baseline of their own, so a device
needs `days_required + MIN_PLACEBO_DAYS` like-days before an event. A zone's own program, when the
network configures one, is listed under its zone.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from oracle.baselines import BaselineSpec
from oracle.epoch import OracleEconomics
from oracle.quality import MIN_PLACEBO_DAYS


def history_needs(spec: BaselineSpec) -> dict[str, Any]:
    """Usable like-days a device needs per day type: the method's minimum plus the placebo days."""
    return {"method": spec.method, "lookbackDays": spec.lookback_days,
            "historyDaysNeeded": {"weekday": spec.days_required(False) + MIN_PLACEBO_DAYS,
                                  "weekend": spec.days_required(True) + MIN_PLACEBO_DAYS}}


def add_baseline_rules_route(app: FastAPI, economics: OracleEconomics) -> None:
    """Serve the history rules of `economics` (fixed for the oracle's life) at /v1/baseline-rules."""
    body = {**history_needs(economics.baseline),
            "zones": {str(zone): history_needs(spec) for zone, spec in sorted(economics.zone_methods.items())}}

    @app.get("/v1/baseline-rules", tags=["baselines"])
    def baseline_rules() -> dict[str, Any]:
        """The history a device needs to be eligible, per day type (and per zone program)."""
        return body
