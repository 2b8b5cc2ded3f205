"""`negawatt devnet fund` on a real anvil with the contracts deployed, reached through network.json as
on a running devnet: the balances read back are what was asked, in token units; a wrong address, a
checksum typo, too many decimals, an amount past the faucet's limit or the token's cap, and a run
folder with no devnet are each refused with one clear line and nothing sent. Also accounts.json."""

from __future__ import annotations

import json

import pytest
from eth_account import Account
from typer.testing import CliRunner

from negawatt.devnet.accounts import AccountsError, create_accounts, describe, read_accounts
from negawatt.devnet.cli import devnet_app
from negawatt.devnet.faucet import FaucetError, check_address, make_order
from protocol.keys import load_key
from protocol.network_profile import NetworkProfile, write_profile


@pytest.fixture
def run(devnet, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    write_profile(folder, NetworkProfile(chain_id=devnet.web3().eth.chain_id, rpc_url=devnet.rpc_url,
                                         manifest=devnet.manifest_path))
    return folder


def fund(run, *args: str):
    return CliRunner().invoke(devnet_app, ["fund", *args, "--run-dir", str(run)])


def balances(devnet, address: str) -> tuple[int, int, int]:
    web3, manifest = devnet.web3(), devnet.manifest()
    return (web3.eth.get_balance(address),
            manifest.contract(web3, "NegawattToken").functions.balanceOf(address).call(),
            manifest.contract(web3, "MockStablecoin").functions.balanceOf(address).call())


def test_fund_gives_each_token_in_its_units_and_adds_to_what_is_there(devnet, run):
    address = Account.create().address
    done = fund(run, address, "--eth", "2.5", "--nega", "100.000000000000000001", "--musd", "1234.56")
    assert done.exit_code == 0, done.output
    assert balances(devnet, address) == (25 * 10**17, 100 * 10**18 + 1, 1_234_560_000)
    assert f"funded {address}: +2.5 ETH (balance 2.5 ETH); +100.000000000000000001 NEGA" in done.stdout
    again = fund(run, address.lower(), "--eth", "1", "--musd", "0.44")
    assert again.exit_code == 0, again.output
    assert balances(devnet, address) == (35 * 10**17, 100 * 10**18 + 1, 1_235_000_000)
    assert "+0.44 mUSD (balance 1235 mUSD)" in again.stdout


def test_fund_with_no_amount_gives_the_defaults(devnet, run):
    address = Account.create().address
    done = fund(run, address)
    assert done.exit_code == 0, done.output
    assert balances(devnet, address) == (10 * 10**18, 100 * 10**18, 1_000 * 10**6)


@pytest.mark.parametrize("args, message", [
    (["0x1234", "--eth", "1"], "'0x1234' is not an address (0x and 40 hex digits)"),
    (["12" * 20, "--eth", "1"], "is not an address"),
    (["0x" + "zz" * 20, "--eth", "1"], "is not an address"),
    (["0xF39Fd6e51aad88F6F4ce6aB8827279cffFb92266", "--eth", "1"], "has a wrong checksum"),
    (["ADDRESS", "--musd", "1.0000001"], "--musd 1.0000001 has more decimals than the token's 6"),
    (["ADDRESS", "--eth", "0.0000000000000000001"], "--eth 0.0000000000000000001 has more decimals than the token's 18"),
    (["ADDRESS", "--eth", "-1"], "--eth '-1' is not a plain non-negative decimal number"),
    (["ADDRESS", "--eth", "1e3"], "is not a plain non-negative decimal number"),
    (["ADDRESS", "--nega", "0"], "--nega 0: the amount must be above 0"),
    (["ADDRESS", "--eth", "1000001"], "at most 1000000 ETH at once"),
])
def test_a_bad_address_or_amount_is_refused_in_one_line(devnet, run, args, message):
    address = Account.create().address
    args = [address if a == "ADDRESS" else a for a in args]
    done = fund(run, *args)
    assert done.exit_code == 2, done.output
    assert message in done.stderr and done.stderr.count("\n") == 1, done.stderr
    assert "Traceback" not in done.output
    assert balances(devnet, address) == (0, 0, 0)


def test_the_supply_cap_is_named(devnet_factory, tmp_path):
    small = devnet_factory({"challenge_window": 60, "min_duration": 60, "min_oracle_bond": 10**18,
                            "token_cap": 1_000 * 10**18, "emission_budget": 10 * 10**18})
    folder = tmp_path / "small"
    folder.mkdir()
    write_profile(folder, NetworkProfile(chain_id=small.web3().eth.chain_id, rpc_url=small.rpc_url,
                                         manifest=small.manifest_path))
    token = small.manifest().contract(small.web3(), "NegawattToken")
    room = token.functions.cap().call() - token.functions.totalSupply().call()
    address = Account.create().address
    done = fund(folder, address, "--nega", "1001")
    assert done.exit_code == 2, done.output
    assert f"--nega 1001: the token's supply cap leaves {room // 10**18} NEGA to mint" in done.stderr, done.stderr
    assert balances(small, address)[1] == 0


def test_no_devnet_in_the_run_folder(tmp_path):
    done = CliRunner().invoke(devnet_app, ["fund", Account.create().address, "--run-dir", str(tmp_path)])
    assert done.exit_code == 2 and "holds no network.json" in done.stderr
    (tmp_path / "network.json").write_text(json.dumps({"chain_id": 31337, "rpc_url": "http://127.0.0.1:9",
                                                       "manifest": "nowhere.json"}))
    done = CliRunner().invoke(devnet_app, ["fund", Account.create().address, "--run-dir", str(tmp_path)])
    assert done.exit_code == 2 and "manifest" in done.stderr and "does not exist" in done.stderr, done.output


def test_a_stopped_devnet_is_named(devnet, run):
    devnet.process.terminate()
    devnet.process.wait(timeout=10)
    done = fund(run, Account.create().address, "--eth", "1")
    assert done.exit_code == 2 and "is the devnet of" in done.stderr and "still running" in done.stderr, done.output


def test_check_address_normalises():
    assert check_address(" 0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266 ") == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert check_address("0xF39FD6E51AAD88F6F4CE6AB8827279CFFFB92266") == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    with pytest.raises(FaucetError):
        check_address("0x" + "ab" * 21)


def test_accounts_json_round_trips_and_its_keystores_open(tmp_path):
    buyer_key = bytes(Account.create().key)
    written = create_accounts(tmp_path, 31337, buyer_key, Account.create().address, "devnet-password")
    read = read_accounts(tmp_path)
    assert read == written
    assert load_key(read.buyer.keystore, read.password) == buyer_key
    owner_key = load_key(read.owner.keystore, read.password)
    assert Account.from_key(owner_key).address == read.owner.address
    assert (tmp_path / "accounts.json").stat().st_mode & 0o077 == 0
    lines = describe(read, tmp_path)
    assert any(read.buyer.address in line and "--musd" in line for line in lines)
    assert any("devnet-password" in line and "NEGAWATT_BUYER_PASSWORD" in line for line in lines)
    # a second `devnet up` on the same folder keeps the owner it gave out
    assert create_accounts(tmp_path, 31337, buyer_key, read.admin.address, "devnet-password").owner == read.owner


def test_a_bad_accounts_file_is_refused_naming_the_field(tmp_path):
    (tmp_path / "accounts.json").write_text(json.dumps({"version": 1, "chain_id": 1, "password": "x",
                                                        "buyer": {"address": "0x12", "keystore": "k",
                                                                  "password_env": "E"},
                                                        "owner": {}, "admin": {}, "extra": 1}))
    with pytest.raises(AccountsError, match="buyer.address"):
        read_accounts(tmp_path)
    (tmp_path / "accounts.json").write_text("x" * 20_000)
    with pytest.raises(AccountsError, match="larger than"):
        read_accounts(tmp_path)
