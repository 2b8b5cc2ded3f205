"""`negawatt node init --devnet RUN_DIR` / `--profile FILE`: node.toml takes the network's RPC,
manifest, API, interval and confirmations from its network.json (and, on a devnet, the claim settings
the devnet gives its own nodes), options given on the command line win, and a node set up so on a
devnet that mines on demand sees a request at once; a bad profile is one clear line."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

from typer.testing import CliRunner

from negawatt.cli import app
from negawatt.localchain import fund_owner
from node.config import load_config
from node.dispatch import RequestWatcher, open_dispatch_db
from protocol.chain import Transactor
from protocol.network_profile import NetworkProfile, write_profile

runner = CliRunner()


def run_dir(tmp_path: Path, devnet, **fields) -> Path:
    folder = tmp_path / "run"  # laid out as `negawatt devnet up` does: manifest.json beside network.json
    folder.mkdir(exist_ok=True)
    shutil.copy(devnet.manifest_path, folder / "manifest.json")
    write_profile(folder, NetworkProfile(**{"chain_id": 31337, "rpc_url": devnet.rpc_url,
                                            "manifest": "manifest.json", "api_url": "http://127.0.0.1:9/",
                                            "confirmations": 0, "interval_seconds": 300, "time_scale": 30.0,
                                            "block_time_seconds": 1.0, **fields}))
    return folder


def init(directory: Path, *options: str):
    return runner.invoke(app, ["node", "init", "--dir", str(directory), "--device", "ev_charger:7400", *options])


def test_a_devnet_node_gets_the_networks_settings_and_sees_requests(devnet, tmp_path, monkeypatch):
    monkeypatch.setenv("NEGAWATT_NODE_PASSWORD", "pw")
    folder = run_dir(tmp_path, devnet)
    result = init(tmp_path / "node", "--devnet", str(folder))
    assert result.exit_code == 0, result.output
    written = tomllib.loads((tmp_path / "node" / "node.toml").read_text())
    manifest = devnet.manifest()
    assert written["rpc_url"] == devnet.rpc_url and Path(written["manifest"]) == (folder / "manifest.json").resolve()
    assert written["confirmations"] == 0 and written["interval_seconds"] == 300
    assert written["api_url"] == "http://127.0.0.1:9"
    assert written["claim_check_seconds"] == 20 and written["claim_gas_multiple"] == 1  # 600 chain s at 30x
    assert written["forecast_check_seconds"] == 10
    assert written["value_wei_per_unit"] == {manifest.address("NegawattToken"): 1,
                                             manifest.address("MockStablecoin"): 10**12}

    # The node sees a request opened on this chain (which mines on demand) at its first poll.
    owner = result.stdout.split("owner: ")[1].split()[0]
    config_path = str(tmp_path / "node" / "node.toml")
    unfunded = runner.invoke(app, ["node", "register", "--config", config_path])
    assert unfunded.exit_code == 2 and f"--nega 740 --run-dir {folder}`" in unfunded.stderr, unfunded.stderr
    fund_owner(devnet.web3(), manifest, owner, 1_000 * 10**18)
    registered = runner.invoke(app, ["node", "register", "--config", config_path])
    assert registered.exit_code == 0, registered.output
    web3 = devnet.web3()
    buyer = Transactor(web3, devnet.keys[2], abis=[entry.abi for entry in manifest.contracts.values()])
    usd, market = manifest.contract(web3, "MockStablecoin"), manifest.contract(web3, "FlexMarket")
    buyer.send(usd.functions.mint(buyer.address, 10**9))
    buyer.send(usd.functions.approve(market.address, 10**9))
    start = (web3.eth.get_block("latest")["timestamp"] // 60 + 30) * 60
    buyer.send(market.functions.openRequest(1, start, start + 900, 5_000, 250_000, usd.address, 10**8))
    config = load_config(Path(config_path))
    watcher = RequestWatcher(web3, market, open_dispatch_db(str(tmp_path / "d.sqlite")), manifest.start_block,
                             config.confirmations)
    assert [r.request_id for r in watcher.poll()[0]] == [1]
    stale = RequestWatcher(web3, market, open_dispatch_db(str(tmp_path / "d2.sqlite")), manifest.start_block, 2)
    assert stale.poll()[0] == []  # what `node init` wrote before: 2 confirmations that never come


def test_options_win_over_the_profile_and_another_network_gets_no_devnet_settings(devnet, tmp_path, monkeypatch):
    monkeypatch.setenv("NEGAWATT_NODE_PASSWORD", "pw")
    folder = run_dir(tmp_path, devnet)
    result = init(tmp_path / "a", "--devnet", str(folder), "--interval", "900", "--confirmations", "3",
                  "--rpc-url", "http://127.0.0.1:1", "--api-url", "http://api.example:8000")
    assert result.exit_code == 0, result.output
    written = tomllib.loads((tmp_path / "a" / "node.toml").read_text())
    assert (written["interval_seconds"], written["confirmations"], written["rpc_url"], written["api_url"]) == (
        900, 3, "http://127.0.0.1:1", "http://api.example:8000")

    profile = write_profile(tmp_path, NetworkProfile(chain_id=31337, name="staging", rpc_url=devnet.rpc_url,
                                                     manifest=devnet.manifest_path, confirmations=12))
    other = init(tmp_path / "b", "--profile", str(profile))
    assert other.exit_code == 0, other.output
    written = tomllib.loads((tmp_path / "b" / "node.toml").read_text())
    assert written["confirmations"] == 12 and written["interval_seconds"] == 900
    assert "value_wei_per_unit" not in written and "claim_gas_multiple" not in written and "api_url" not in written


def test_a_bad_profile_is_one_clear_line(devnet, tmp_path, monkeypatch):
    monkeypatch.setenv("NEGAWATT_NODE_PASSWORD", "pw")
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken.json").write_text("{not json")
    (tmp_path / "odd.json").write_text('{"chain_id": 31337, "rpc_url": "ftp://x", "manifest": "m.json", "colour": 1}')
    (tmp_path / "lost.json").write_text('{"chain_id": 31337, "rpc_url": "http://127.0.0.1:8545", '
                                        '"manifest": "absent.json"}')
    wrong = tmp_path / "wrong"
    wrong.mkdir()
    write_profile(wrong, NetworkProfile(chain_id=5, rpc_url=devnet.rpc_url, manifest=devnet.manifest_path))
    cases = [
        (["--devnet", str(tmp_path / "absent")], "not a folder"),
        (["--devnet", str(tmp_path / "empty")], "cannot read the network profile"),
        (["--profile", str(tmp_path / "broken.json")], "not JSON"),
        (["--profile", str(tmp_path / "odd.json")], "rpc_url"),
        (["--profile", str(tmp_path / "lost.json")], "absent.json does not exist"),
        (["--devnet", str(wrong)], "the profile is for chain 5, its manifest for chain 31337"),
        (["--devnet", str(wrong), "--profile", str(tmp_path / "odd.json")], "not both"),
        (["--rpc-url", devnet.rpc_url, "--api-url", "ftp://api"], "not an http(s) URL"),
    ]
    for options, message in cases:
        result = init(tmp_path / "node", *options)
        assert result.exit_code == 2, (options, result.output)
        assert message in result.stderr and result.stderr.count("\n") == 1, (options, result.stderr)
        assert "Traceback" not in result.output and not (tmp_path / "node" / "node.toml").exists()
    assert "colour" in init(tmp_path / "node", "--profile", str(tmp_path / "odd.json")).stderr
