"""The project's own OpenADR 3 VTN facade, started for the node-as-VEN tests the way tests/vtn's
fixture starts it (a module, not a conftest, so a node test can use it): anvil with negawatt
deployed (15-minute gate), a funded buyer bound to the BL client, one registered site meter whose
key the facade holds, and the facade served over real HTTP on loopback."""

from __future__ import annotations

import json
import subprocess
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Iterator

from eth_account import Account
from uvicorn_server import ServedApps

from negawatt.localchain import ANVIL_KEYS, deploy, free_port, start_anvil
from protocol import eip712
from protocol.chain import Transactor, connect
from protocol.keys import write_keystore
from protocol.manifest import load_manifest

PASSWORD = "node-ven-test-password"
ZONE = 1
SITE_METER = 6
PARAMS = {"challenge_window": 60, "min_duration": 900, "min_oracle_bond": 10**18, "holdout_bps": 5_000,
          "gate_lead_seconds": 900}


@contextmanager
def running_facade(tmp: Path) -> Iterator[SimpleNamespace]:
    """A served facade and its chain; yields the chain handles, the base URL, the facade's context
    and its vtn.json (the BL's and the first VEN client's credentials)."""
    from vtn.app import build_context, create_app
    from vtn.provision import provision
    from vtn.settings import VtnSettings

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
        now = int(web3.eth.get_block("latest")["timestamp"])
        site = Account.create()
        permit = {"owner": owner.address, "device": site.address, "kind": SITE_METER, "capacityW": 20_000,
                  "zone": ZONE, "nonce": 0, "deadline": now + 3600}
        signature = eip712.sign(site.key, "DevicePermit", permit, manifest.chainId, registry.address)
        owner.send(registry.functions.register(site.address, SITE_METER, 20_000, ZONE, now + 3600, signature))
        site_path = tmp / "sites" / "site-0.json"
        write_keystore(site_path, site.key, PASSWORD, kdf="pbkdf2", iterations=1_000)
        buyer_keystore = tmp / "buyer.json"
        write_keystore(buyer_keystore, ANVIL_KEYS[2], PASSWORD, kdf="pbkdf2", iterations=1_000)
        files = provision(tmp, "http://127.0.0.1:1", buyer_keystore, [site_path], ven_clients=1)
        settings = VtnSettings(database_url=f"sqlite:///{tmp / 'vtn.sqlite'}", clients_file=files.clients_file,
                               keystore_password=PASSWORD, manifest=manifest_path, rpc_url=rpc, poll_seconds=1.0)
        context = build_context(settings)
        base = served(create_app(context))
        settings.public_url = base
        credentials = {**json.loads(files.vtn_jsons[0].read_text()), "base_url": base,
                       "token_url": f"{base}/auth/token"}
        yield SimpleNamespace(web3=web3, manifest=manifest, base=base, context=context, credentials=credentials,
                              site=site.address)
    finally:
        served.stop_all()
        anvil.terminate()
        try:
            anvil.wait(timeout=10)
        except subprocess.TimeoutExpired:
            anvil.kill()
