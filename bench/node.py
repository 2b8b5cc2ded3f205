"""`python -m bench node`: a node with 10 simulated devices on anvil; memory, idle CPU, dispatch latency.

A fresh anvil (mining on demand) with negawatt deployed; `negawatt node init` with 10 devices
(2 each of EV charger, heat pump, HVAC, home battery, water heater), funded and registered with
`negawatt node register`; then `negawatt node run` as its own process. Figures:
  rss_mb                    the node process's resident memory (VmRSS) after the requests
  rss_peak_mb               its peak (VmHWM), start-up included
  cpu_percent_idle          its CPU use over 30 s with no request (metering, chain polling)
  dispatch_latency_ms_p50/99  from the start of a request window to the setpoint applied on the
                            device, over every device-request pair of 3 back-to-back requests
  targets, meets_targets    the bounds the figures must stay under (the dispatch latency bound
                            was a timed assertion of tests/node/test_dispatch.py before)
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from negawatt.localchain import ANVIL_KEYS, deploy, free_port, fund_owner, start_anvil

TARGETS = {"dispatch_latency_ms_p99": 1_000}  # a setpoint applied within a second of the window start
DEVICES = ["ev_charger:7400", "ev_charger:7400", "heat_pump:3000", "heat_pump:3000", "hvac:3000", "hvac:3000",
           "battery:5000", "battery:5000", "water_heater:3000", "water_heater:3000"]


def _proc(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def _cpu_seconds(pid: int) -> float:
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def run(idle_seconds: int = 30, requests: int = 3) -> dict:
    """Run the scenario and return the figures."""
    from protocol.chain import Transactor, connect
    from protocol.manifest import load_manifest

    work = Path(tempfile.mkdtemp(prefix="negawatt-bench-node-"))
    port = free_port()
    anvil = start_anvil(port)
    node = None
    env = {**os.environ, "NEGAWATT_NODE_PASSWORD": "bench"}
    negawatt = str(Path(sys.executable).parent / "negawatt")
    try:
        rpc = f"http://127.0.0.1:{port}"
        deploy(rpc, work / "manifest.json", {"min_duration": 60, "challenge_window": 60, "min_oracle_bond": 10**18})
        init = [negawatt, "node", "init", "--dir", str(work), "--zone", "1", "--rpc-url", rpc, "--manifest",
                str(work / "manifest.json"), "--interval", "60"]
        for device in DEVICES:
            init += ["--device", device]
        out = subprocess.run(init, env=env, capture_output=True, text=True, check=True).stdout
        owner = out.split("owner: ")[1].split()[0]
        text = (work / "node.toml").read_text().replace("interval_seconds = 60\n", "interval_seconds = 60\n"
                                                                                  "confirmations = 0\n", 1)
        # Devices that consume during the benchmark: EVs plugged in now, batteries in a charge window,
        # heat pumps in cold weather starting at the bottom of their band, HVACs on a hot day.
        minute = int(time.time()) // 60 * 60
        hour = time.gmtime().tm_hour
        busy = {
            "ev_charger": f'{{ sessions = [{{ arrival = {minute - 600}, departure = {minute + 43_200}, '
                          f'energy_needed_wh = 25000 }}] }}',
            "battery": f"{{ initial_soc = 0.3, charge_windows = [[{hour}.0, {hour + 1}.0]] }}",
            "heat_pump": "{ outdoor_mean_c = -8.0, initial_temp_c = 20.6 }",
            "hvac": "{ outdoor_mean_c = 36.0, initial_temp_c = 24.4 }",
        }
        blocks = text.split("[[devices]]")
        for i, block in enumerate(blocks[1:], start=1):
            kind = block.split('kind = "')[1].split('"')[0]
            if kind in busy:
                blocks[i] = block.replace(block[block.index("params = "):].split("\n")[0], f"params = {busy[kind]}")
        (work / "node.toml").write_text("[[devices]]".join(blocks))

        web3 = connect(rpc)
        manifest = load_manifest(work / "manifest.json")
        abis = [entry.abi for entry in manifest.contracts.values()]
        buyer = Transactor(web3, ANVIL_KEYS[2], abis=abis)
        fund_owner(web3, manifest, owner, 10_000 * 10**18)
        subprocess.run([negawatt, "node", "register", "--config", str(work / "node.toml")], env=env, check=True,
                       capture_output=True, cwd=work)

        node = subprocess.Popen([negawatt, "node", "run", "--config", str(work / "node.toml")], env=env, cwd=work,
                                stdout=(work / "node.log").open("w"), stderr=subprocess.STDOUT)
        time.sleep(8)  # start-up: imports, keys, first chain reads
        cpu0, wall0 = _cpu_seconds(node.pid), time.monotonic()
        time.sleep(idle_seconds)
        cpu_idle = 100 * (_cpu_seconds(node.pid) - cpu0) / (time.monotonic() - wall0)

        market, usd = manifest.contract(web3, "FlexMarket"), manifest.contract(web3, "MockStablecoin")
        buyer.send(usd.functions.mint(buyer.address, 10**12))
        buyer.send(usd.functions.approve(market.address, 10**12))
        first = int(time.time()) + 20
        for k in range(requests):
            start = first + k * 65
            buyer.send(market.functions.openRequest(1, start, start + 60, 20_000, 300_000, usd.address, 10**9))
        time.sleep(max(0, first + (requests - 1) * 65 + 60 + 3 - time.time()))
        rss_mb, rss_peak_mb = _proc(node.pid, "VmRSS") / 1024, _proc(node.pid, "VmHWM") / 1024
        rows = sqlite3.connect(work / "node-data" / "dispatch.sqlite").execute(
            "SELECT latency_ms FROM participations WHERE latency_ms IS NOT NULL").fetchall()
        latencies = [r[0] for r in rows]
        if not latencies:
            raise RuntimeError(f"no device took part; see {work / 'node.log'}")
        figures = {
            "devices": len(DEVICES),
            "rss_mb": round(rss_mb, 1),
            "rss_peak_mb": round(rss_peak_mb, 1),
            "cpu_percent_idle": round(cpu_idle, 2),
            "dispatch_latency_ms_p50": round(_percentile(latencies, 0.5), 1),
            "dispatch_latency_ms_p99": round(_percentile(latencies, 0.99), 1),
            "dispatch_samples": len(latencies),
            "requests": requests,
        }
        return {**figures, "targets": TARGETS,
                "meets_targets": all(figures[name] <= bound for name, bound in TARGETS.items())}
    finally:
        if node is not None and node.poll() is None:
            node.terminate()
            try:
                node.wait(timeout=15)
            except subprocess.TimeoutExpired:
                node.kill()
        anvil.terminate()
        anvil.wait(timeout=10)


