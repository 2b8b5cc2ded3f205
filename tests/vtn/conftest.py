"""Fixtures for the VTN facade tests: one anvil with negawatt deployed (holdout 50 %, 15-minute gate),
a funded buyer, three registered site meters whose keys the facade holds, one real oracle ingest,
and the facade itself, each served over real HTTP on loopback; plus a runner for the stock
openadr3-client scripts in their own Python 3.12 venv (`.venv-openadr`, made by `make setup`)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from eth_account import Account
from uvicorn_server import ServedApps

from negawatt.localchain import ANVIL_KEYS, REPO, deploy, free_port, start_anvil
from protocol import eip712
from protocol.chain import Transactor, connect
from protocol.keys import write_keystore
from protocol.manifest import load_manifest

OPENADR_PYTHON = REPO / ".venv-openadr" / "bin" / "python"
CLIENTS = Path(__file__).parent / "clients"
PASSWORD = "vtn-test-password"
ZONE = 1
SITE_METER = 6
PARAMS = {"challenge_window": 60, "min_duration": 900, "min_oracle_bond": 10**18, "holdout_bps": 5_000,
          "gate_lead_seconds": 900}


def run_client(script: str, vtn_json: Path, *args: str) -> dict:
    """Run a stock-client script in the OpenADR venv; returns the JSON it printed last."""
    env = {**os.environ, "PYTHONPATH": str(CLIENTS)}
    done = subprocess.run([str(OPENADR_PYTHON), str(CLIENTS / script), str(vtn_json), *args], capture_output=True,
                          text=True, timeout=120, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and lines, f"{script} {args} failed:\n{done.stdout}\n{done.stderr[-3000:]}"
    return json.loads(lines[-1])


@pytest.fixture(scope="module")
def vtn_net(tmp_path_factory):
    """The network the stock clients talk to (module-scoped: one deployment for the whole module)."""
    if not OPENADR_PYTHON.exists():
        pytest.skip(f"{OPENADR_PYTHON} missing: `make setup` creates it with Python 3.12 and openadr3-client 2.4.2")
    from oracle.ingest_api import IngestServiceSettings, build_ingestor, create_ingest_app
    from vtn.app import build_context, create_app
    from vtn.provision import provision
    from vtn.settings import VtnSettings

    tmp = tmp_path_factory.mktemp("vtn")
    port = free_port()
    anvil = start_anvil(port)
    served = ServedApps()
    try:
        rpc = f"http://127.0.0.1:{port}"
        manifest_path = tmp / "manifest.json"
        deploy(rpc, manifest_path, PARAMS)
        web3, manifest = connect(rpc), load_manifest(manifest_path)
        abis = [entry.abi for entry in manifest.contracts.values()]
        registry = manifest.contract(web3, "DeviceRegistry")
        stablecoin = manifest.contract(web3, "MockStablecoin")
        buyer = Transactor(web3, ANVIL_KEYS[2], abis=abis)
        owner = Transactor(web3, ANVIL_KEYS[1], abis=abis)
        buyer.send(stablecoin.functions.mint(buyer.address, 1_000 * 10**6))
        site_paths, site_addresses = [], []
        now = int(web3.eth.get_block("latest")["timestamp"])
        for n in range(3):
            site = Account.create()
            permit = {"owner": owner.address, "device": site.address, "kind": SITE_METER, "capacityW": 20_000,
                      "zone": ZONE, "nonce": 0, "deadline": now + 3600}
            signature = eip712.sign(site.key, "DevicePermit", permit, manifest.chainId, registry.address)
            owner.send(registry.functions.register(site.address, SITE_METER, 20_000, ZONE, now + 3600, signature))
            path = tmp / "sites" / f"site-{n}.json"
            write_keystore(path, site.key, PASSWORD, kdf="pbkdf2", iterations=1_000)
            site_paths.append(path)
            site_addresses.append(site.address)
        buyer_keystore = tmp / "buyer.json"
        write_keystore(buyer_keystore, ANVIL_KEYS[2], PASSWORD, kdf="pbkdf2", iterations=1_000)

        oracle_settings = IngestServiceSettings(database_url=f"sqlite:///{tmp / 'oracle.sqlite'}", rpc_url=rpc,
                                                manifest=manifest_path, confirmations=0)
        oracle_url = served(create_ingest_app(build_ingestor(oracle_settings)))

        placeholder = "http://127.0.0.1:1"
        files = provision(tmp, placeholder, buyer_keystore, site_paths, ven_clients=2)
        settings = VtnSettings(database_url=f"sqlite:///{tmp / 'vtn.sqlite'}", clients_file=files.clients_file,
                               keystore_password=PASSWORD, manifest=manifest_path, rpc_url=rpc,
                               oracles=[oracle_url], poll_seconds=1.0,
                               callback_allow=["127.0.0.1/32"])  # the webhook tests' receivers are on loopback
        context = build_context(settings)
        base = served(create_app(context))
        settings.public_url = base
        for path in files.vtn_jsons:  # the real URL, now that the facade listens
            document = json.loads(path.read_text())
            document.update(base_url=base, token_url=f"{base}/auth/token")
            path.write_text(json.dumps(document))
        yield SimpleNamespace(web3=web3, manifest=manifest, buyer=buyer, stablecoin=stablecoin,
                              market=manifest.contract(web3, "FlexMarket"), oracle_url=oracle_url, base=base,
                              vtn_json=files.vtn_jsons[0], other_vtn_json=files.vtn_jsons[1], context=context,
                              sites=site_addresses, served=served)
    finally:
        served.stop_all()
        anvil.terminate()
        try:
            anvil.wait(timeout=10)
        except subprocess.TimeoutExpired:
            anvil.kill()


def event_start(web3, lead: int = 1800) -> int:
    """A quarter-hour start at least `lead` seconds after the chain's time (past the 15-minute gate)."""
    now = int(web3.eth.get_block("latest")["timestamp"])
    return -(-(now + lead) // 900) * 900


def iso(seconds: int) -> str:
    """ISO 8601 UTC of unix seconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(seconds))
