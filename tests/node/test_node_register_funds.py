"""`negawatt node register` checks the owner's balances before sending anything: an owner without
ETH for gas or NEGA for the device bond gets one line naming its address, what it needs and has in
token units, and the devnet command that funds it; once funded, it registers and bonds."""

from __future__ import annotations

from typer.testing import CliRunner

from negawatt.cli import app
from negawatt.localchain import fund_owner

runner = CliRunner()


def init(devnet, tmp_path, monkeypatch) -> tuple[str, str]:
    monkeypatch.setenv("NEGAWATT_NODE_PASSWORD", "node-pw")
    result = runner.invoke(app, ["node", "init", "--dir", str(tmp_path), "--device", "ev_charger:7400",
                                 "--device", "heat_pump:3000", "--rpc-url", devnet.rpc_url,
                                 "--manifest", str(devnet.manifest_path), "--interval", "60"])
    assert result.exit_code == 0, result.output
    return result.stdout.split("owner: ")[1].split()[0], str(tmp_path / "node.toml")


def test_an_unfunded_owner_is_told_what_it_needs(devnet, tmp_path, monkeypatch):
    owner, config = init(devnet, tmp_path, monkeypatch)
    web3, manifest = devnet.web3(), devnet.manifest()
    registry = manifest.contract(web3, "DeviceRegistry")

    bare = runner.invoke(app, ["node", "register", "--config", config])
    assert bare.exit_code == 2, bare.output
    line = bare.stderr.strip()
    assert "\n" not in line and "Traceback" not in bare.output
    assert line.startswith(f"error: {owner} cannot register yet: it needs ")
    assert " ETH for gas (has 0 ETH)" in line
    # the bond rule read from Staking: 10,400 W at 100 NEGA per kW (the deployment's default)
    assert "1040 NEGA for the device bond (has 0 NEGA)" in line
    assert "the bond for 10400 W at 100 NEGA per kW is 1040 NEGA" in line
    eth = line.split(" --eth ")[1].split()[0]  # the gas shortfall, rounded up to 4 decimals
    assert float(eth) >= float(line.split("it needs ")[1].split()[0]) and len(eth.split(".")[-1]) <= 4
    assert f"`negawatt devnet fund {owner} --eth {eth} --nega 1040 --run-dir RUN_DIR`" in line
    assert registry.functions.deviceInfo(owner).call()[0] == "0x" + "00" * 20  # nothing was sent
    assert web3.eth.get_transaction_count(owner) == 0

    fund_owner(web3, manifest, owner, 1_000 * 10**18)  # gas, but 40 NEGA short of the bond
    short = runner.invoke(app, ["node", "register", "--config", config])
    assert short.exit_code == 2 and "ETH for gas" not in short.stderr
    assert "needs 1040 NEGA for the device bond (has 1000 NEGA" in short.stderr
    assert f"`negawatt devnet fund {owner} --nega 40 --run-dir RUN_DIR`" in short.stderr
    assert web3.eth.get_transaction_count(owner) == 0

    fund_owner(web3, manifest, owner, 40 * 10**18, eth_wei=0)
    done = runner.invoke(app, ["node", "register", "--config", config])
    assert done.exit_code == 0, done.output
    assert done.stdout.count("registered (") == 2 and "staked 1040 NEGA (bond now 1040 NEGA)" in done.stdout
    again = runner.invoke(app, ["node", "register", "--config", config])
    assert again.exit_code == 0 and "bond 1040 NEGA covers the required 1040 NEGA" in again.stdout
