"""`negawatt devnet up` as a user runs it, in its own process, and `negawatt devnet down` from another."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

NEGAWATT = str(Path(sys.executable).parent / "negawatt")


def test_up_serves_every_role_and_down_stops_them_all(tmp_path):
    run_dir = tmp_path / "run"
    log = tmp_path / "up.log"
    up = subprocess.Popen([NEGAWATT, "devnet", "up", "--nodes", "1", "--zones", "1", "--oracles", "2",
                           "--threshold", "2", "--run-dir", str(run_dir)], stdout=log.open("w"),
                          stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240
        while "devnet up" not in log.read_text():
            assert up.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        recorded = json.loads((run_dir / "processes.json").read_text())
        assert sorted(p["name"] for p in recorded) == ["anvil", "api", "node-01", "oracle-1", "oracle-2"]
        manifest = json.loads((run_dir / "manifest.json").read_text())
        rpc = next(word for word in log.read_text().split() if word.startswith("http://")).rstrip(",;")
        chain_id = httpx.post(rpc, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).json()
        assert int(chain_id["result"], 16) == manifest["chainId"]

        down = subprocess.run([NEGAWATT, "devnet", "down", "--run-dir", str(run_dir)], capture_output=True,
                              text=True, timeout=120)
        assert down.returncode == 0, down.stderr
        assert "stopped 5 process(es)" in down.stdout
        assert up.wait(timeout=60) == 0, log.read_text()
        for process in recorded:
            try:
                os.kill(process["pid"], 0)
                alive = True
            except ProcessLookupError:
                alive = False
            assert not alive, process
        assert not (run_dir / "processes.json").exists() and not (run_dir / "devnet.pid").exists()
    finally:
        if up.poll() is None:
            up.terminate()
            up.wait(timeout=60)
