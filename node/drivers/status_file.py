"""What the running node knows about its real devices, for `negawatt node status`.

`negawatt node status` is a separate process: it must not open connections of its own to the
devices (an OCPP charger connects to the running node's Central System, not to the status command).
The running node therefore writes each real device's state (availability, last reading, error,
setpoint) to `device-status.json` in its data folder every few seconds (atomically), and the status
command reads it back with its age.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from pathlib import Path

from node.devices.interface import Device

FILE_NAME = "device-status.json"


def write(data_dir: Path, devices: Iterable[tuple[str, Device]]) -> None:
    """Write the state of every live (real) driver among (address, driver) pairs."""
    states = {address: driver.state() for address, driver in devices if driver.live}
    if not states:
        return
    path = Path(data_dir) / FILE_NAME
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps({"writtenAt": time.time(), "devices": states}, default=str))
    os.replace(temporary, path)


def read(data_dir: Path, address: str) -> dict | None:
    """The running node's last report of device `address` with `reportAgeSeconds`, or None if there is none."""
    try:
        body = json.loads((Path(data_dir) / FILE_NAME).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    state = body.get("devices", {}).get(address)
    if state is None:
        return None
    return {**state, "reportAgeSeconds": round(time.time() - float(body.get("writtenAt", 0)), 1)}
