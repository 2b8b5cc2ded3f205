"""`negawatt node init / register / status / claim` against anvil, and clear errors for bad input."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from negawatt.cli import app
from negawatt.localchain import fund_owner

runner = CliRunner()


def test_init_register_status_and_claim(devnet, tmp_path, monkeypatch):
    monkeypatch.setenv("NEGAWATT_NODE_PASSWORD", "node-pw")
    result = runner.invoke(app, ["node", "init", "--dir", str(tmp_path), "--device", "ev_charger:7400",
                                 "--device", "heat_pump:3000", "--zone", "2", "--rpc-url", devnet.rpc_url,
                                 "--manifest", str(devnet.manifest_path), "--interval", "60"])
    assert result.exit_code == 0, result.output
    owner = result.stdout.split("owner: ")[1].split()[0]
    assert "node-pw" not in (tmp_path / "node.toml").read_text()

    # Fund the owner: gas, and protocol tokens for the bond (100 tokens per kW by default).
    web3, manifest = devnet.web3(), devnet.manifest()
    fund_owner(web3, manifest, owner, 2_000 * 10**18)

    config = str(tmp_path / "node.toml")
    result = runner.invoke(app, ["node", "register", "--config", config])
    assert result.exit_code == 0, result.output
    assert result.stdout.count("registered (") == 2 and "staked 1040 NEGA" in result.stdout

    again = runner.invoke(app, ["node", "register", "--config", config])
    assert again.exit_code == 0 and again.stdout.count("already registered") == 2 and "covers" in again.stdout

    status = runner.invoke(app, ["node", "status", "--json", "--config", config])
    assert status.exit_code == 0, status.output
    body = json.loads(status.stdout)
    assert body["owner"] == owner
    assert [(d["registered"], d["zone"], d["capacityW"]) for d in body["devices"]] == [(True, 2, 7_400),
                                                                                       (True, 2, 3_000)]
    assert body["stake"] == {"bonded": str(1_040 * 10**18), "required": str(1_040 * 10**18), "free": str(1_040 * 10**18)}
    assert body["tokens"][body["stakeToken"]] == {"symbol": "NEGA", "decimals": 18} and body["warnings"] == []
    assert [d["kind"] for d in body["devices"]] == ["ev_charger", "heat_pump"]
    # no oracle publishes its baseline rules here, and the devices have no complete day of readings
    assert all([w["code"] for w in d["warnings"]] == ["insufficient_history"] for d in body["devices"])

    human = runner.invoke(app, ["node", "status", "--config", config])
    assert human.exit_code == 0, human.output
    assert f"owner    {owner}" in human.stdout and "1040 NEGA bonded, 1040 NEGA required" in human.stdout
    assert "nothing to claim" in human.stdout and "ev_charger, 7400 W, zone 2: registered; drawing" in human.stdout
    assert human.stdout.count("! cannot earn yet (insufficient_history): no complete day of readings yet") == 2
    assert "1040000000000000000000" not in human.stdout
    assert body["outbox"]["pending"] == {} and body["unclaimed"] == {}

    claim = runner.invoke(app, ["node", "claim", "--config", config])
    assert claim.exit_code == 0 and "no oracle publishes the current root yet" in claim.stdout  # no oracle here


def test_bad_configuration_and_arguments_get_clear_errors(tmp_path, monkeypatch):
    monkeypatch.delenv("NEGAWATT_NODE_PASSWORD", raising=False)
    result = runner.invoke(app, ["node", "init", "--dir", str(tmp_path), "--device", "ev_charger:7400"])
    assert result.exit_code == 2 and "no keystore password: set NEGAWATT_NODE_PASSWORD or give a password file" in result.stderr
    monkeypatch.setenv("NEGAWATT_NODE_PASSWORD", "pw")
    for device, message in [("toaster:10", "unknown kind 'toaster'"), ("ev_charger:-5", "positive integer"),
                            ("ev_charger", "positive integer")]:
        bad = runner.invoke(app, ["node", "init", "--dir", str(tmp_path), "--device", device])
        assert bad.exit_code == 2 and message in bad.stderr, bad.stderr

    missing = runner.invoke(app, ["node", "status", "--config", str(tmp_path / "absent.toml")])
    assert missing.exit_code == 2 and "no config file" in missing.stderr and "negawatt node init" in missing.stderr
    (tmp_path / "broken.toml").write_text("zone = \n")
    broken = runner.invoke(app, ["node", "status", "--config", str(tmp_path / "broken.toml")])
    assert broken.exit_code == 2 and "not valid TOML" in broken.stderr
    (tmp_path / "bad.toml").write_text('owner_keystore = "k.json"\nzone = -1\ncolour = "red"\n')
    bad = runner.invoke(app, ["node", "status", "--config", str(tmp_path / "bad.toml")])
    assert bad.exit_code == 2
    for fragment in ("zone", "colour", "devices"):
        assert fragment in bad.stderr
    (tmp_path / "kind.toml").write_text('owner_keystore = "k.json"\n[[devices]]\nkeystore = "d.json"\n'
                                        'kind = "toaster"\ncapacity_w = 5\n')
    kind = runner.invoke(app, ["node", "status", "--config", str(tmp_path / "kind.toml")])
    assert kind.exit_code == 2 and "unknown kind 'toaster'" in kind.stderr
