"""`negawatt node status` for a person: the status (node.runtime.status) as a few readable lines.

Amounts are in token units with the token's symbol (protocol.units.format_units, symbol and decimals
as the status read them from the token contracts); each device shows its registration, what it is
doing and why it cannot earn yet. `--json` prints the status itself, for tools.
"""

from __future__ import annotations

from typing import Any

from protocol.units import format_units


def amount(status: dict[str, Any], token: str, base_units: str | int) -> str:
    """`base_units` of `token` in token units with its symbol (base units if the token is unknown)."""
    info = status.get("tokens", {}).get(token, {"symbol": "", "decimals": 0})
    return format_units(int(base_units), int(info["decimals"]), str(info["symbol"]) or f"units of {token}")


def _doing(state: dict[str, Any]) -> str:
    """What a device is doing, from its state."""
    if state.get("available") is False:
        return f"unavailable ({state.get('error') or 'no answer'})"
    parts = []
    if "power_w" in state:
        parts.append(f"drawing {state['power_w']} W")
    if state.get("setpoint_w") is not None:
        parts.append(f"curtailed to {state['setpoint_w']} W")
    return ", ".join(parts) or "no reading"


def render(status: dict[str, Any]) -> str:
    """The human view of a node's status."""
    stake = status["stake"]
    token = status.get("stakeToken", "")
    lines = [f"owner    {status['owner']}",
             f"bond     {amount(status, token, stake['bonded'])} bonded, {amount(status, token, stake['required'])} "
             f"required for the devices' capacity"]
    pending = status["outbox"]["pending"]
    lines.append(f"outbox   {sum(pending.values())} item(s) waiting for the oracles"
                 + (f" ({', '.join(f'{url}: {n}' for url, n in sorted(pending.items()))})" if pending else "")
                 + (f", {status['outbox']['rejected']} rejected" if status["outbox"]["rejected"] else ""))
    lines.append(f"oracles  {', '.join(status['oracles']) or 'none published in the OracleHub'}")
    unclaimed = status["unclaimed"]
    lines.append("rewards  " + (", ".join(amount(status, t, v) for t, v in sorted(unclaimed.items()))
                                + " unclaimed (`negawatt node claim`)" if unclaimed else "nothing to claim"))
    lines.append("devices")
    for device in status["devices"]:
        registration = ("registered" + ("" if device["active"] else ", inactive")) if device["registered"] \
            else "not registered"
        capacity = device["capacityW"] or device["state"].get("capacity_w", "?")
        lines.append(f"  {device['address']}  {device.get('kind', '?')}, {capacity} W, zone {device['zone']}: "
                     f"{registration}; {_doing(device['state'])}")
        for warning in device.get("warnings", []):
            lines.append(f"    ! cannot earn yet ({warning['code']}): {warning['message']}")
    for warning in status.get("warnings", []):
        lines.append(f"! cannot earn yet ({warning['code']}): {warning['message']}")
    return "\n".join(lines)
