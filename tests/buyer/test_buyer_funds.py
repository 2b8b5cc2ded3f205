"""`negawatt buyer open` by a buyer who lacks the budget's token or the gas money: one line naming the
buyer's address, what it holds and needs in token units, and the devnet faucet command that fixes it;
exit code 2, no traceback, nothing sent. Real anvil, the real CLI (typer's runner)."""

from __future__ import annotations

import re

import pytest
from eth_account import Account
from typer.testing import CliRunner

from buyer.checks import BuyerError, MarketRules, check_balance, check_order, gas_needed, make_order
from buyer.cli import buyer_app
from protocol.chain import Transactor
from protocol.keys import write_keystore

PARAMS = {"challenge_window": 60, "min_duration": 60, "min_oracle_bond": 10**18, "gate_lead_seconds": 300}
PASSWORD = "funds-test-password"
BUYER = "0x" + "12" * 20


def test_a_short_budget_names_the_address_the_shortfall_and_the_faucet():
    with pytest.raises(BuyerError) as caught:
        check_balance(1_000_000, 2_500_000, 6, "mUSD", BUYER, 10**18, gas_needed(10**9))
    message = str(caught.value)
    assert f"the buyer {BUYER} holds 1 mUSD, below the budget 2.5 mUSD (needs 1.5 mUSD more)" in message
    assert f"negawatt devnet fund {BUYER} --musd 1.5 --run-dir RUN_DIR" in message
    assert "\n" not in message and "ETH" not in message


def test_no_gas_money_is_named_with_what_opening_costs_and_both_shortfalls_share_one_line():
    with pytest.raises(BuyerError) as caught:
        check_balance(0, 2_000_000, 6, "mUSD", BUYER, 0, gas_needed(2 * 10**9))
    message = str(caught.value)
    assert "holds 0 mUSD, below the budget 2 mUSD (needs 2 mUSD more) and has 0 ETH for gas, below the " \
           "0.0012 ETH opening can cost" in message
    assert f"negawatt devnet fund {BUYER} --musd 2 --eth 1 --run-dir RUN_DIR" in message


def test_a_token_without_a_devnet_faucet_gets_no_faucet_flag():
    with pytest.raises(BuyerError, match=r"holds 0 USDC.*; send it the difference$"):
        check_balance(0, 5, 6, "USDC", BUYER)


def test_enough_of_both_passes():
    check_balance(2_000_000, 2_000_000, 6, "mUSD", BUYER, gas_needed(10**9), gas_needed(10**9))
    rules = MarketRules(now=1_000_000, min_duration=900, max_duration=86_400, gate_lead=600)
    order = make_order(zone=1, start=1_003_600, end=1_007_200, target_w=5_000, price_per_kwh=300_000,
                       token=BUYER, budget=1_500_000)
    check_order(order, rules, 6, "mUSD", 1_500_000, gas_needed(10**9), BUYER, gas_needed(10**9))
    with pytest.raises(BuyerError, match="for gas"):
        check_order(order, rules, 6, "mUSD", 1_500_000, gas_needed(10**9) - 1, BUYER, gas_needed(10**9))


@pytest.fixture
def chain(devnet_factory):
    return devnet_factory(PARAMS)


def _open(chain, tmp_path, key: bytes):
    keystore = tmp_path / "buyer.json"
    write_keystore(keystore, key, PASSWORD, kdf="pbkdf2", iterations=1_000)
    web3 = chain.web3()
    start = int(web3.eth.get_block("latest")["timestamp"]) + 3_600
    env = {"NEGAWATT_BUYER_RPC_URL": chain.rpc_url, "NEGAWATT_BUYER_MANIFEST": str(chain.manifest_path),
           "NEGAWATT_BUYER_KEYSTORE": str(keystore), "NEGAWATT_BUYER_PASSWORD": PASSWORD}
    return CliRunner().invoke(buyer_app, ["open", "--zone", "1", "--start", str(start), "--end", str(start + 3_600),
                                          "--target-kw", "5", "--max-price-per-kwh", "0.30", "--token",
                                          "MockStablecoin", "--budget", "2"], env=env)


def test_an_unfunded_buyer_gets_one_line_and_nothing_is_sent(chain, tmp_path):
    key = bytes(Account.create().key)
    address = Account.from_key(key).address
    result = _open(chain, tmp_path, key)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output and result.stderr.count("\n") == 1, result.stderr
    assert f"the buyer {address} holds 0 mUSD, below the budget 2 mUSD (needs 2 mUSD more) and has 0 ETH " \
           "for gas" in result.stderr
    assert f"negawatt devnet fund {address} --musd 2 --eth 1 --run-dir RUN_DIR" in result.stderr
    assert chain.web3().eth.get_transaction_count(address) == 0


def test_a_buyer_with_the_budget_but_no_gas_is_told_about_eth_only(chain, tmp_path):
    key = bytes(Account.create().key)
    address = Account.from_key(key).address
    web3, manifest = chain.web3(), chain.manifest()
    Transactor(web3, chain.keys[0]).send(manifest.contract(web3, "MockStablecoin").functions.mint(address, 5_000_000))
    result = _open(chain, tmp_path, key)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stderr.count("\n") == 1, result.stderr
    assert re.search(rf"the buyer {address} has 0 ETH for gas, below the [0-9.]+ ETH opening can cost; send it the "
                     rf"difference, or on a devnet run `negawatt devnet fund {address} --eth 1 --run-dir RUN_DIR`",
                     result.stderr), result.stderr
    assert "mUSD" not in result.stderr
