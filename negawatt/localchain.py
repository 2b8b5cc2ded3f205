"""A local chain for tests, benchmarks and devnets: anvil from node_modules, and `ape run deploy`."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# anvil's (and Ape's) default development mnemonic: "test test ... junk"; these are its first keys.
ANVIL_KEYS = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_anvil(port: int, block_time: float | None = None) -> subprocess.Popen:
    """Start anvil from node_modules on `port` and wait until it answers."""
    binary = shutil.which("anvil", path=str(REPO / "node_modules" / ".bin"))
    if not binary:
        raise RuntimeError("anvil is not installed: run `make setup` (npm ci)")
    args = [binary, "--port", str(port), "--silent"]
    if block_time:
        args += ["--block-time", str(block_time)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("anvil did not start")


def deploy(rpc_url: str, out: Path, params: dict | None = None) -> None:
    """`ape run deploy` against the anvil at `rpc_url`, writing the manifest to `out`."""
    args = [str(Path(sys.executable).parent / "ape"), "run", "deploy", "--network", "ethereum:local:foundry",
            "--out", str(out)]
    if params:
        params_file = out.with_suffix(".params.json")
        params_file.write_text(json.dumps(params))
        args += ["--params", str(params_file)]
    result = subprocess.run(args, cwd=REPO, env={**os.environ, "APE_FOUNDRY_HOST": rpc_url},
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"ape run deploy failed:\n{result.stdout}\n{result.stderr}")


def fund_owner(web3, manifest, owner: str, tokens: int, eth_wei: int = 10**18) -> None:
    """Give a device owner on a local chain what `negawatt node register` needs: gas money (a transfer
    from anvil's first account, the deployer and admin) and `tokens` protocol-token base units for
    the bond (minted by the admin, who grants itself MINTER_ROLE first if it lacks it)."""
    from protocol.chain import Transactor

    admin = Transactor(web3, ANVIL_KEYS[0], abis=[entry.abi for entry in manifest.contracts.values()])
    transfer = {"to": owner, "value": eth_wei, "gas": 21_000, "gasPrice": web3.eth.gas_price,
                "chainId": manifest.chainId, "nonce": web3.eth.get_transaction_count(admin.address)}
    web3.eth.wait_for_transaction_receipt(web3.eth.send_raw_transaction(
        admin.account.sign_transaction(transfer).raw_transaction))
    token = manifest.contract(web3, "NegawattToken")
    minter = token.functions.MINTER_ROLE().call()
    if not token.functions.hasRole(minter, admin.address).call():
        admin.send(token.functions.grantRole(minter, admin.address))
    admin.send(token.functions.mint(owner, tokens))


def open_funded_request(buyer, stablecoin, market, zone: int, start: int, end: int, target_w: int,
                        price_per_kwh: int, budget: int) -> int:
    """A devnet buyer's request: mint `budget` of the mock stablecoin to the buyer, approve the market
    and open the request with that budget in escrow; returns the request id."""
    buyer.send(stablecoin.functions.mint(buyer.address, budget))
    buyer.send(stablecoin.functions.approve(market.address, budget))
    buyer.send(market.functions.openRequest(zone, start, end, target_w, price_per_kwh, stablecoin.address, budget))
    return int(market.functions.requestCount().call())
