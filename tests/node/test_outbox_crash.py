"""The outbox loses and duplicates nothing: the node is killed (-9) mid-upload and restarted, and
the oracle was down when it started; in the end the oracle holds every reading exactly once."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from eth_account import Account
from waiting import wait_for

from node.outbox import Outbox
from protocol import eip712
from protocol.chain import Transactor

REPO = Path(__file__).resolve().parents[2]
INTERVAL, COUNT = 60, 1_440  # one day of minutes per device: 15 batches of 96 readings each
SCRIPT = Path(__file__).with_name("node_process.py")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stored(url: str, device: str) -> list[dict]:
    try:
        response = httpx.get(f"{url}/v1/meter-batches", params={"device": device, "limit": 10_000}, timeout=5)
    except httpx.HTTPError:
        return []
    return response.json() if response.status_code == 200 else []


def test_kill_9_mid_upload_and_an_oracle_down_lose_and_duplicate_nothing(devnet, tmp_path):
    web3, manifest = devnet.web3(), devnet.manifest()
    registry = manifest.contract(web3, "DeviceRegistry")
    owner = Transactor(web3, devnet.keys[1], abis=[manifest.contracts["DeviceRegistry"].abi])
    devices = []
    for _ in range(2):
        device = Account.create()
        deadline = web3.eth.get_block("latest")["timestamp"] + 3600
        permit = {"owner": owner.address, "device": device.address, "kind": 5, "capacityW": 3_000, "zone": 1,
                  "nonce": 0, "deadline": deadline}
        signature = eip712.sign(device.key, "DevicePermit", permit, manifest.chainId, registry.address)
        owner.send(registry.functions.register(device.address, 5, 3_000, 1, deadline, signature))
        devices.append({"address": device.address, "key": "0x" + bytes(device.key).hex()})
    devices_file = tmp_path / "devices.json"
    devices_file.write_text(json.dumps(devices))

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    start = (int(time.time()) // INTERVAL - COUNT - 5) * INTERVAL
    outbox_path = tmp_path / "outbox.sqlite"
    node_cmd = [sys.executable, str(SCRIPT), str(outbox_path), str(devnet.manifest_path), str(devices_file), url,
                str(start), str(INTERVAL), str(COUNT)]
    env = {**os.environ, "PYTHONPATH": str(REPO)}

    # The node starts while the oracle is down: it signs and stores everything, and keeps retrying.
    node = subprocess.Popen(node_cmd + ["0.02"], cwd=REPO, env=env)
    time.sleep(2)
    assert node.poll() is None
    oracle = subprocess.Popen(
        [sys.executable, "-m", "oracle.ingest_api", "--port", str(port), "--database-url",
         f"sqlite:///{tmp_path}/oracle.sqlite", "--rpc-url", devnet.rpc_url, "--manifest", str(devnet.manifest_path),
         "--confirmations", "0"],
        cwd=REPO, env={**env, "NEGAWATT_INGEST_INTERVAL_SECONDS": str(INTERVAL)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # Killed mid-upload: some batches acknowledged, not all.
        wait_for(lambda: len(stored(url, devices[0]["address"])) >= 5, 60, "the first acknowledgements")
        node.send_signal(signal.SIGKILL)
        node.wait(timeout=10)
        partial = sum(len(stored(url, d["address"])) for d in devices)
        assert 0 < partial < 2 * 15

        # Restarted, it delivers the rest and exits once everything is acknowledged.
        restarted = subprocess.run(node_cmd + ["0"], cwd=REPO, env=env, timeout=180)
        assert restarted.returncode == 0

        outbox = Outbox(outbox_path)
        assert outbox.depth() == {}
        for index, device in enumerate(devices):
            mine = outbox.batches(device["address"])
            theirs = stored(url, device["address"])
            assert [b.sequence for b in mine] == list(range(15))
            assert sorted(b["sequence"] for b in theirs) == list(range(15))  # each exactly once
            assert {b["sequence"]: (b["start"], tuple(b["readings"])) for b in theirs} == {
                b.sequence: (b.start, b.readings) for b in mine}
            readings = [r for b in sorted(theirs, key=lambda b: b["sequence"]) for r in b["readings"]]
            assert readings == [(37 * index + 11 * k) % 45 + 5 for k in range(COUNT)]
        outbox.close()
    finally:
        for process in (node, oracle):
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
