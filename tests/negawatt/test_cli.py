"""The `negawatt` command: manifest and Merkle tools, and clear errors for bad input."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from negawatt.cli import app
from protocol.merkle import RewardLeaf, RewardsTree, process_proof

runner = CliRunner()
A, B, T = "0x" + "11" * 20, "0x" + "33" * 20, "0x" + "22" * 20


def test_merkle_build_prints_root_and_proofs(tmp_path):
    leaves = [{"account": A, "token": T, "amount": "5"}, {"account": B, "token": T, "amount": "700"}]
    path = tmp_path / "leaves.json"
    path.write_text(json.dumps(leaves))
    result = runner.invoke(app, ["merkle", "build", str(path)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    tree = RewardsTree([RewardLeaf(A, T, 5), RewardLeaf(B, T, 700)])
    assert out["root"] == "0x" + tree.root.hex()
    assert [leaf["amount"] for leaf in out["leaves"]] == ["5", "700"]
    for leaf in out["leaves"]:
        proof = [bytes.fromhex(p[2:]) for p in leaf["proof"]]
        assert process_proof(RewardLeaf(leaf["account"], leaf["token"], int(leaf["amount"])).hash(), proof) == tree.root


def run_with(tmp_path, content: str):
    path = tmp_path / "leaves.json"
    path.write_text(content)
    return runner.invoke(app, ["merkle", "build", str(path)])


def test_merkle_build_rejects_bad_leaves(tmp_path):
    cases = {
        "[]": "expected a non-empty JSON list of leaves",
        "{": "is not valid JSON",
        json.dumps([{"account": A, "token": T}]): "leaf 0: expected exactly the keys account, token, amount",
        json.dumps([{"account": "0x12", "token": T, "amount": "1"}]): "leaf 0: account is not an address",
        json.dumps([{"account": A, "token": T, "amount": 5}]): "leaf 0: amount must be a decimal string",
        json.dumps([{"account": A, "token": T, "amount": "-5"}]): "leaf 0: amount must be a decimal string",
        json.dumps([{"account": A, "token": T, "amount": str(2**256)}]): "leaf 0: amount does not fit in uint256",
        json.dumps([{"account": A, "token": T, "amount": "1"}] * 2): "duplicate leaf",
    }
    for content, message in cases.items():
        result = run_with(tmp_path, content)
        assert result.exit_code == 2, content
        assert message in result.stderr, (content, result.stderr)


def test_missing_files_are_reported(tmp_path):
    result = runner.invoke(app, ["merkle", "build", str(tmp_path / "nope.json")])
    assert result.exit_code == 2 and "no such file" in result.stderr
    result = runner.invoke(app, ["manifest", "show", str(tmp_path / "nope.json")])
    assert result.exit_code == 2 and "no deployment manifest" in result.stderr


def test_version_prints_the_package_version():
    result = runner.invoke(app, ["version"])
    assert result.exit_code == 0 and result.stdout.strip() == "0.1.0"


def test_keystore_creates_and_imports_without_printing_secrets(tmp_path, monkeypatch):
    from eth_account import Account

    from protocol.keys import load_key

    monkeypatch.setenv("NEGAWATT_KEYSTORE_PASSWORD", "pw")
    account = Account.create()
    monkeypatch.setenv("IMPORTED_KEY", account.key.hex())
    result = runner.invoke(app, ["keystore", "--out", str(tmp_path / "k.json"), "--import-env", "IMPORTED_KEY"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == account.address and account.key.hex()[2:] not in result.output
    assert load_key(tmp_path / "k.json", "pw") == bytes(account.key)

    again = runner.invoke(app, ["keystore", "--out", str(tmp_path / "k.json")])
    assert again.exit_code == 2 and "refusing to overwrite" in again.stderr
    monkeypatch.setenv("BAD_KEY", "0x1234")
    bad = runner.invoke(app, ["keystore", "--out", str(tmp_path / "b.json"), "--import-env", "BAD_KEY"])
    assert bad.exit_code == 2 and "does not hold a secp256k1 private key" in bad.stderr
    monkeypatch.delenv("NEGAWATT_KEYSTORE_PASSWORD")
    nopw = runner.invoke(app, ["keystore", "--out", str(tmp_path / "c.json")])
    assert nopw.exit_code == 2 and "NEGAWATT_KEYSTORE_PASSWORD" in nopw.stderr
    fresh = runner.invoke(app, ["keystore", "--out", str(tmp_path / "d.json"), "--password-file", str(tmp_path / "k.json")])
    assert fresh.exit_code == 0 and fresh.stdout.startswith("0x")


def test_the_node_command_does_not_load_the_oracle_libraries():
    import subprocess
    import sys

    code = ("import sys; sys.argv = ['negawatt', 'node', '--help']\n"
            "from negawatt.entry import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "print('LOADED', 'numpy' in sys.modules, 'oracle.baselines' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "LOADED False False" in out and "register" in out
