"""`ape run deploy` against a running anvil writes a manifest that protocol.manifest loads, and the
contracts behind it are deployed and wired (checked over plain JSON-RPC with web3.py)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from web3 import Web3

from protocol.manifest import check_chain, load_manifest

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def anvil():
    binary = shutil.which("anvil", path=str(REPO / "node_modules" / ".bin"))
    assert binary, "anvil is installed by `make setup` (npm ci)"
    port = free_port()
    process = subprocess.Popen([binary, "--port", str(port), "--silent"], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    web3 = Web3(Web3.HTTPProvider(url))
    for _ in range(100):
        if web3.is_connected():
            break
        time.sleep(0.1)
    yield url, web3
    process.terminate()
    process.wait(timeout=10)


def run_deploy(url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "APE_FOUNDRY_HOST": url}
    ape = str(Path(sys.executable).parent / "ape")
    return subprocess.run([ape, "run", "deploy", "--network", "ethereum:local:foundry", *args],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)


def test_deploy_writes_a_manifest_of_wired_contracts(anvil, tmp_path):
    url, web3 = anvil
    out = tmp_path / "manifest.json"
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"threshold": 2, "challenge_window": 120, "holdout_bps": 1_500,
                                  "gate_lead_seconds": 900}))
    result = run_deploy(url, "--out", str(out), "--params", str(params))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"manifest written to {out}" in result.stdout

    manifest = load_manifest(out)
    check_chain(manifest, web3)
    for name, entry in manifest.contracts.items():
        assert web3.eth.get_code(entry.address) != b"", name
        assert 0 < entry.block <= web3.eth.block_number
    hub = manifest.contract(web3, "OracleHub")
    token = manifest.contract(web3, "NegawattToken")
    registry = manifest.contract(web3, "DeviceRegistry")
    assert hub.functions.threshold().call() == 2
    assert hub.functions.challengeWindow().call() == 120
    market = manifest.contract(web3, "FlexMarket")
    assert (market.functions.holdoutBps().call(), market.functions.gateLeadSeconds().call()) == (1_500, 900)
    assert token.functions.hasRole(token.functions.MINTER_ROLE().call(), hub.address).call()
    assert registry.functions.nonces("0x" + "00" * 19 + "01").call() == 0
    assert manifest.roles["minter"] == [hub.address]
    assert manifest.parameters["threshold"] == 2


def test_deploy_rejects_bad_parameters_with_the_reason(anvil, tmp_path):
    url, _ = anvil
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"threshold": 0, "typo_field": 1}))
    result = run_deploy(url, "--params", str(params), "--out", str(tmp_path / "m.json"))
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "threshold" in output and "typo_field" in output
    assert not (tmp_path / "m.json").exists()
