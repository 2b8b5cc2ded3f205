"""Time as OCPP messages write it, shared by the Central System (node.drivers.ocpp_central) and its
per-version sessions (node.drivers.ocpp_sessions), so that neither imports the other for it."""

from __future__ import annotations

from datetime import UTC, datetime


def utc_now() -> str:
    """The current time as OCPP writes it (ISO 8601, UTC, milliseconds, `Z`)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
