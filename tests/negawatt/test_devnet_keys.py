"""`negawatt devnet keys`: it opens the keystores of a devnet's run folder with the devnet's password
and prints keys that control the accounts named there; it refuses a folder of any other chain."""

from __future__ import annotations

import json

import pytest
from eth_account import Account
from typer.testing import CliRunner

from negawatt.devnet.accounts import create_accounts
from negawatt.devnet.cli import devnet_app
from negawatt.devnet.keys import KeysError, devnet_keys
from node.setup import DeviceSpec, init_node

PASSWORD = "devnet-password"


def run_folder(tmp_path, chain_id: int = 31337):
    buyer_key = bytes(Account.create().key)
    accounts = create_accounts(tmp_path, chain_id, buyer_key, Account.create().address, PASSWORD)
    node = init_node(tmp_path / "nodes" / "node-0", [DeviceSpec("hvac", 3_000)], PASSWORD, scrypt_n=2)
    return accounts, node, buyer_key


def test_the_keys_control_the_devnets_accounts(tmp_path):
    accounts, node, buyer_key = run_folder(tmp_path)
    keys = devnet_keys(tmp_path)
    assert [k.role for k in keys] == ["buyer", "spare owner", "owner of node node-0"]
    assert [k.address for k in keys] == [accounts.buyer.address, accounts.owner.address, node.owner]
    assert keys[0].private_key == "0x" + buyer_key.hex()
    for k in keys:  # each key signs as the address printed beside it
        assert Account.from_key(k.private_key).address == k.address

    printed = CliRunner().invoke(devnet_app, ["keys", "--run-dir", str(tmp_path), "--json"])
    assert printed.exit_code == 0, printed.output
    assert [k["address"] for k in json.loads(printed.output)["keys"]] == [k.address for k in keys]


def test_a_folder_of_another_chain_or_none_is_refused(tmp_path):
    run_folder(tmp_path / "mainnet", chain_id=1)
    with pytest.raises(KeysError, match="not a local devnet"):
        devnet_keys(tmp_path / "mainnet")
    refused = CliRunner().invoke(devnet_app, ["keys", "--run-dir", str(tmp_path / "nowhere")])
    assert refused.exit_code == 2 and "devnet up" in refused.output
