"""A node process for the outbox crash test: backfill history into the outbox, then deliver it.

    python tests/node/node_process.py OUTBOX MANIFEST DEVICES.json ORACLE_URL START INTERVAL COUNT PAUSE

Exits 0 once the oracle acknowledged everything (or 3 after 120 s).
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from node.metering import MeteredDevice, enqueue_history
from node.outbox import Outbox
from node.uploader import Uploader
from protocol.manifest import load_manifest


def history(index: int, count: int) -> list[int]:
    """Deterministic readings (Wh per interval) of device `index`."""
    return [(37 * index + 11 * k) % 45 + 5 for k in range(count)]


def main() -> int:
    outbox_path, manifest_path, devices_path, oracle, start, interval, count, pause = sys.argv[1:9]
    manifest = load_manifest(Path(manifest_path))
    outbox = Outbox(Path(outbox_path))
    devices = [MeteredDevice(d["address"], bytes.fromhex(d["key"][2:]), None) for d in json.loads(
        Path(devices_path).read_text())]
    for index, device in enumerate(devices):
        enqueue_history(outbox, device, int(start), history(index, int(count)), int(interval), manifest.chainId,
                        manifest.address("DeviceRegistry"), [oracle])
    # one post per batch (no bulk upload), paused: the test kills the node while batches are going out
    uploader = Uploader(outbox, backoff_base=0.2, pause_between=float(pause), bulk_min=0)
    deadline = time.monotonic() + 120
    while outbox.depth().get(oracle, 0) and time.monotonic() < deadline:
        if not uploader.pump(oracle):
            threading.Event().wait(0.1)
    return 0 if not outbox.depth().get(oracle, 0) else 3


if __name__ == "__main__":
    sys.exit(main())
