"""`negawatt devnet up --vtn`: the OpenADR 3.1.0 VTN facade on a devnet, and the vtn.json its stock
clients are configured from.

The rule: the facade gets a Business Logic client bound to the devnet's buyer (whose keystore is in
accounts.json; it is given 1,000 mUSD here), two VEN clients, and two site meters registered in
zone 1 by the admin account, whose keys the facade holds (RUN_DIR/vtn/sites/). `provision` writes
RUN_DIR/vtn-clients.json (secret digests) and RUN_DIR/vtn.json (base_url, token_url, bl_client_id,
bl_client_secret, ven_client_id, ven_client_secret; RUN_DIR/vtn-ven-2.json for the second VEN); the
facade runs as `negawatt vtn serve` with the devnet's keystore password, the API for results and the
oracles' URLs from the OracleHub, and webhook callbacks to loopback allowed (vtn.callback_policy
refuses them by default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eth_account import Account

from negawatt.localchain import REPO, free_port
from protocol import eip712
from protocol.keys import write_keystore

SITE_METER = 6
SITES = 2
SITE_CAPACITY_W = 20_000
BUYER_MUSD = 1_000 * 10**6


def _register_sites(net: Any, folder: Path) -> list[Path]:
    registry = net.contract("DeviceRegistry")
    paths = []
    now = net.chain_time()
    for n in range(SITES):
        site = Account.create()
        nonce = int(registry.functions.nonces(site.address).call())
        permit = {"owner": net.admin.address, "device": site.address, "kind": SITE_METER,
                  "capacityW": SITE_CAPACITY_W, "zone": 1, "nonce": nonce, "deadline": now + 3600}
        signature = eip712.sign(site.key, "DevicePermit", permit, net.manifest.chainId, registry.address)
        net.admin.send(registry.functions.register(site.address, SITE_METER, SITE_CAPACITY_W, 1, now + 3600,
                                                   signature))
        path = folder / "sites" / f"site-{n}.json"
        write_keystore(path, site.key, net.password, kdf="scrypt", iterations=2**14)
        paths.append(path)
    return paths


def start_vtn(net: Any, accounts: Any) -> Path:
    """Fund the buyer, register the VEN sites, provision the clients and start the facade; returns vtn.json."""
    from negawatt.devnet.network import _http_ok, _negawatt, wait_for
    from vtn.provision import provision

    stablecoin = net.contract("MockStablecoin")
    net.buyer.send(stablecoin.functions.mint(net.buyer.address, BUYER_MUSD))
    folder = net.run_dir / "vtn"
    sites = _register_sites(net, folder)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    files = provision(net.run_dir, base, Path(accounts.buyer.keystore), sites, ven_clients=2)
    args = [_negawatt(), "vtn", "serve", "--clients-file", str(files.clients_file), "--manifest",
            str(net.manifest_path), "--rpc-url", net.rpc_url, "--database-url", f"sqlite:///{folder / 'vtn.sqlite'}",
            "--port", str(port), "--public-url", base, "--poll-seconds", "2",
            "--callback-allow", "127.0.0.0/8", "--callback-allow", "::1"]  # a devnet's webhooks run on loopback
    if net.api_url:
        args += ["--api-url", net.api_url]
    net.group.start("vtn", args, env={**net.env, "NEGAWATT_VTN_KEYSTORE_PASSWORD": net.password}, cwd=REPO)
    wait_for(lambda: _http_ok(f"{base}/auth/server"), 90, "the VTN facade to serve", net.group)
    net.on_step(f"OpenADR 3.1.0 VTN facade on {base}; its clients' settings in {files.vtn_jsons[0]}")
    return files.vtn_jsons[0]
