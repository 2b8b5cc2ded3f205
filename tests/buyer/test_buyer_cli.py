"""`negawatt buyer ...` driven for real: typer's CliRunner over the buyer app, against anvil with the
contracts deployed, a keystore imported from an anvil key with `negawatt keystore --import-env`, and
for one test the API served by uvicorn on loopback. A refusal must leave the buyer's nonce unchanged."""

from __future__ import annotations

import json
import time

import httpx
import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from typer.testing import CliRunner
from uvicorn_server import ServedApps  # tests/uvicorn_server.py (tests/ is on sys.path)

from buyer.cli import buyer_app
from negawatt.cli import app as negawatt_app
from negawatt.localchain import REPO
from protocol import eip712
from protocol.chain import Transactor

PARAMS = {"challenge_window": 60, "min_duration": 60, "min_oracle_bond": 10**18, "gate_lead_seconds": 300}
PASSWORD = "buyer-test-password"
BUDGET = 2_000_000  # 2 mUSD; 5 kW x 1 h x 0.30 = 1.5 mUSD at most


class Buyer:
    """A devnet, a keystore for anvil key 2 holding 10 mUSD, and the buyer CLI's environment."""

    def __init__(self, devnet, tmp_path, api_url: str = "http://127.0.0.1:9"):
        self.devnet, self.web3, self.manifest = devnet, devnet.web3(), devnet.manifest()
        self.abis = [entry.abi for entry in self.manifest.contracts.values()]
        self.market = self.manifest.contract(self.web3, "FlexMarket")
        self.musd = self.manifest.contract(self.web3, "MockStablecoin")
        self.keystore = tmp_path / "buyer.json"
        created = CliRunner().invoke(negawatt_app, ["keystore", "--out", str(self.keystore), "--import-env",
                                                    "BUYER_TEST_KEY"],
                                     env={"BUYER_TEST_KEY": devnet.keys[2], "NEGAWATT_KEYSTORE_PASSWORD": PASSWORD})
        assert created.exit_code == 0, created.output
        self.address = created.output.strip().splitlines()[-1]
        assert self.address == self.web3.eth.account.from_key(devnet.keys[2]).address
        self.admin = Transactor(self.web3, devnet.keys[0], abis=self.abis)
        self.admin.send(self.musd.functions.mint(self.address, 10_000_000))
        self.env = {"NEGAWATT_BUYER_RPC_URL": devnet.rpc_url, "NEGAWATT_BUYER_MANIFEST": str(devnet.manifest_path),
                    "NEGAWATT_BUYER_KEYSTORE": str(self.keystore), "NEGAWATT_BUYER_PASSWORD": PASSWORD,
                    "NEGAWATT_BUYER_API_URL": api_url, "NEGAWATT_BUYER_API_TIMEOUT": "2"}

    def run(self, *args: str, **env: str):
        return CliRunner().invoke(buyer_app, list(args), env={**self.env, **env})

    def now(self) -> int:
        return int(self.web3.eth.get_block("latest")["timestamp"])

    def nonce(self) -> int:
        return self.web3.eth.get_transaction_count(self.address)

    def balance(self, who: str) -> int:
        return self.musd.functions.balanceOf(who).call()

    def open_args(self, start: int | str, end: int | str, **overrides: str) -> list[str]:
        options = {"--zone": "4", "--start": str(start), "--end": str(end), "--target-kw": "5",
                   "--max-price-per-kwh": "0.30", "--token": self.musd.address, "--budget": "2", **overrides}
        return ["open", *[item for pair in options.items() for item in pair]]


def iso(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


@pytest.fixture
def buyer(devnet_factory, tmp_path) -> Buyer:
    return Buyer(devnet_factory(PARAMS), tmp_path)


def test_open_list_status_cancel(buyer):
    start = buyer.now() + 3_600
    nonce = buyer.nonce()
    opened = buyer.run(*buyer.open_args(iso(start), str(start + 3_600)))
    assert opened.exit_code == 0, opened.stderr
    assert "permit + openRequest (2 transactions)" in opened.stdout
    assert "request 1 opened (permit)" in opened.stdout
    assert buyer.nonce() == nonce + 2  # permit, then openRequest
    r = buyer.market.functions.getRequest(1).call()
    # buyer, start, end, status, allocated, token, zone, targetW, pricePerKWh, escrow, deposited, paid
    assert tuple(r) == (buyer.address, start, start + 3_600, 1, False, buyer.musd.address, 4, 5_000, 300_000,
                        BUDGET, BUDGET, 0)
    assert buyer.balance(buyer.market.address) == BUDGET
    assert buyer.balance(buyer.address) == 8_000_000

    listed = buyer.run("list")
    assert listed.exit_code == 0, listed.stderr
    assert "cannot be reached" in listed.stderr  # no API at the configured URL: the chain's events
    assert listed.stdout.startswith("#1 open: zone 4, ")
    assert "5 kW, ceiling 0.3 mUSD/kWh, budget 2 mUSD" in listed.stdout

    status = buyer.run("status", "1")
    assert status.exit_code == 0, status.stderr
    lines = status.stdout.splitlines()
    assert lines[0] == ("request 1 (open): requested 5 kW, accepted — (not cleared yet), delivered — (not settled "
                        "yet), paid 0 mUSD, refunded 0 mUSD")
    assert any("API:" in line and "cannot be reached" in line and "the chain's view" in line for line in lines)
    as_json = json.loads(buyer.run("status", "1", "--json").stdout)
    assert (as_json["requestedW"], as_json["escrow"], as_json["status"], as_json["acceptedW"]) == \
        (5_000, str(BUDGET), "open", None)

    cancelled = buyer.run("cancel", "1")
    assert cancelled.exit_code == 0, cancelled.stderr
    assert cancelled.stdout.strip() == "request 1 cancelled: refunded 2 mUSD"
    assert buyer.balance(buyer.address) == 10_000_000
    assert buyer.market.functions.getRequest(1).call()[3] == 2  # Cancelled
    after = buyer.run("status", "1")
    assert after.stdout.splitlines()[0].endswith("paid 0 mUSD, refunded 2 mUSD")
    assert "(cancelled)" in after.stdout.splitlines()[0]

    nonce = buyer.nonce()
    again = buyer.run("cancel", "1")
    assert again.exit_code == 2
    assert "request 1 is cancelled: only an open request can be cancelled" in again.stderr
    assert buyer.nonce() == nonce
    unknown = buyer.run("status", "7")
    assert unknown.exit_code == 2 and "there is no request 7" in unknown.stderr


@pytest.mark.parametrize("case, message", [
    ("past", "the window starts in the past"),
    ("gate", "the gate has already closed: commitments close 300 s before the start"),
    ("low budget", "budget 1 mUSD is below what the request can pay: 5 kW x 1 h x 0.3 mUSD/kWh = 1.5 mUSD"),
    ("eoa token", "unknown token 0x"),
    ("not a token", "has no decimals(), it is not an ERC-20 token"),
    ("too precise", "--budget 2.0000001 has more decimals than the token's 6"),
    ("too short", "the window lasts 30 s; this market takes 60 to 86400 s"),
    ("poor", "holds 10 mUSD, below the budget 11 mUSD (needs 1 mUSD more)"),
    ("naive time", "has no timezone"),
])
def test_a_bad_argument_is_refused_before_any_transaction(buyer, case, message):
    now = buyer.now()
    start, end = now + 3_600, now + 7_200
    args = {
        "past": buyer.open_args(iso(now - 3_600), iso(now)),
        "gate": buyer.open_args(now + 200, now + 3_800),
        "low budget": buyer.open_args(start, end, **{"--budget": "1"}),
        "eoa token": buyer.open_args(start, end, **{"--token": buyer.web3.eth.account.from_key(
            buyer.devnet.keys[8]).address}),
        "not a token": buyer.open_args(start, end, **{"--token": buyer.market.address}),
        "too precise": buyer.open_args(start, end, **{"--budget": "2.0000001"}),
        "too short": buyer.open_args(start, start + 30),
        "poor": buyer.open_args(start, end, **{"--budget": "11"}),
        "naive time": buyer.open_args("2030-01-01T18:00:00", end),
    }[case]
    nonce, count = buyer.nonce(), buyer.market.functions.requestCount().call()
    result = buyer.run(*args)
    assert result.exit_code == 2, result.stdout
    assert message in result.stderr
    assert result.stderr.count("\n") == 1  # one line
    assert buyer.nonce() == nonce  # nothing was sent
    assert buyer.market.functions.requestCount().call() == count == 0


def test_an_availability_price_opens_where_the_market_pays_it_and_is_refused_elsewhere(buyer):
    from buyer.market import pays_availability

    start = buyer.now() + 3_600
    nonce = buyer.nonce()
    low = buyer.run(*buyer.open_args(start, start + 3_600, **{"--budget": "1.7"}),
                    "--availability-price-per-kw-h", "0.05")
    assert low.exit_code == 2 and buyer.nonce() == nonce
    if not pays_availability(buyer.market):  # the deployed FlexMarket has no openRequestWithAvailability
        assert "--availability-price-per-kw-h is not supported by this market yet" in low.stderr
        return
    assert "x (0.3 mUSD/kWh + 0.05 mUSD/kW·h availability) = 1.75 mUSD" in low.stderr
    opened = buyer.run(*buyer.open_args(start, start + 3_600), "--availability-price-per-kw-h", "0.05")
    assert opened.exit_code == 0, opened.stderr
    assert buyer.market.functions.availabilityPriceOf(1).call() == 50_000
    assert "availability ceiling 0.05 mUSD/kW·h" in buyer.run("status", "1").stdout


def test_a_token_without_permit_is_approved(buyer):
    artifact = json.loads((REPO / ".build" / "__local__.json").read_text())["contractTypes"]["HostileToken"]
    factory = buyer.web3.eth.contract(abi=artifact["abi"], bytecode=artifact["deploymentBytecode"]["bytecode"])
    receipt = buyer.admin.send(factory.constructor())
    token = buyer.web3.eth.contract(address=receipt.raw["contractAddress"], abi=artifact["abi"])
    buyer.admin.send(token.functions.mint(buyer.address, 5 * 10**18))
    start = buyer.now() + 3_600
    nonce = buyer.nonce()
    result = buyer.run(*buyer.open_args(start, start + 3_600, **{"--token": token.address, "--budget": "1.5",
                                                                  "--max-price-per-kwh": "0.3"}))
    assert result.exit_code == 0, result.stderr
    assert "approve + openRequest (2 transactions)" in result.stdout and "opened (approve)" in result.stdout
    assert buyer.nonce() == nonce + 2
    request = buyer.market.functions.getRequest(1).call()
    assert request[5] == token.address and request[9] == 15 * 10**17  # 1.5 HOST at 18 decimals, exactly


def _post_allocation(buyer: Buyer, request_id: int, accepted_w: int, price: int) -> None:
    """Two bonded oracles (threshold 2) sign the request's Allocation; the admin carries it."""
    hub, staking, nega = (buyer.manifest.contract(buyer.web3, n) for n in ("OracleHub", "Staking", "NegawattToken"))
    keys = buyer.devnet.keys[3:5]
    minter = nega.functions.MINTER_ROLE().call()
    if not nega.functions.hasRole(minter, buyer.admin.address).call():
        buyer.admin.send(nega.functions.grantRole(minter, buyer.admin.address))
    for key in keys:
        oracle = Transactor(buyer.web3, key, abis=buyer.abis)
        buyer.admin.send(nega.functions.mint(oracle.address, 10**18))
        oracle.send(nega.functions.approve(staking.address, 10**18))
        oracle.send(staking.functions.stake(10**18))
        buyer.admin.send(hub.functions.addOracle(oracle.address))
    buyer.admin.send(hub.functions.setThreshold(2))
    root = b"\x42" * 32
    # the deployed hub's postAllocation says which fields its Allocation type has (availabilityPrice or not)
    inputs = [i["name"] for i in next(item for item in hub.abi if item.get("name") == "postAllocation")["inputs"]]
    values = {"requestId": request_id, "root": root, "acceptedW": accepted_w, "clearingPrice": price,
              "availabilityPrice": 0}
    document = eip712.typed_data("Allocation", {}, buyer.manifest.chainId, hub.address)
    fields = [f for f in eip712.MESSAGE_TYPES["Allocation"] if f["name"] in inputs]
    if "availabilityPrice" in inputs and all(f["name"] != "availabilityPrice" for f in fields):
        fields.append({"name": "availabilityPrice", "type": "uint128"})
    document["types"]["Allocation"] = fields
    document["message"] = {f["name"]: values[f["name"]] for f in fields}
    signatures = [bytes(Account.sign_message(encode_typed_data(full_message=document), key).signature)
                  for key in keys]
    args = [values[name] for name in inputs if name != "signatures"]
    buyer.admin.send(hub.functions.postAllocation(*args, signatures))


def test_status_from_the_api_and_an_allocated_request_cannot_be_cancelled(devnet_factory, tmp_path):
    from api.service import build_app
    from api.settings import ApiSettings

    devnet = devnet_factory(PARAMS)
    served = ServedApps()
    try:
        api_url = served(build_app(ApiSettings(
            _env_file=None, manifest=devnet.manifest_path, rpc_url=devnet.rpc_url,
            database_url=str(tmp_path / "api.sqlite"), confirmations=0, poll_seconds=0.1,
            rate_limit_per_second=10_000, rate_limit_burst=10_000)))
        buyer = Buyer(devnet, tmp_path, api_url)
        start = buyer.now() + 3_600
        assert buyer.run(*buyer.open_args(start, start + 3_600)).exit_code == 0
        _post_allocation(buyer, 1, accepted_w=4_250, price=150_000)

        nonce = buyer.nonce()
        refused = buyer.run("cancel", "1")
        assert refused.exit_code == 2
        assert ("request 1 is already allocated (4.25 kW accepted at 0.15/kWh): the sites it accepted are "
                "committed, so it can no longer be cancelled") in refused.stderr
        assert buyer.nonce() == nonce

        head = buyer.web3.eth.block_number
        deadline = time.monotonic() + 30
        while httpx.get(f"{api_url}/v1/ready").json().get("indexed_block") != head:
            assert time.monotonic() < deadline, "the API's indexer did not reach the head"
            time.sleep(0.1)
        status = buyer.run("status", "1")
        assert status.exit_code == 0, status.stderr
        first = status.stdout.splitlines()[0]
        assert first.startswith("request 1 (open): requested 5 kW, accepted 4.25 kW at 0.15 mUSD/kWh, ")
        assert "API:" not in status.stdout
        as_json = json.loads(buyer.run("status", "1", "--json").stdout)
        assert as_json["api"] == "ok" and as_json["acceptedW"] == 4_250 and as_json["clearingPrice"] == "150000"
        assert as_json["allocationRoot"] == "0x" + "42" * 32
        assert as_json["escrow"] == str(4_250 * 3_600 * 150_000 // 3_600_000)  # lowered to the allocation's cost

        listed = buyer.run("list")
        assert listed.exit_code == 0 and listed.stderr == ""  # from the API
        assert listed.stdout.startswith("#1 open: zone 4, ") and "accepted 4.25 kW" in listed.stdout
    finally:
        served.stop_all()


def _supply_app(curve: list[dict] | None):
    """A stand-in for the API's supply route over real HTTP: the given curve, or 404 (no forecasts)."""
    from fastapi import FastAPI, HTTPException

    app = FastAPI()

    @app.get("/v1/zones/{zone}/supply")
    def supply(zone: int, start: int, end: int):
        if curve is None:
            raise HTTPException(404, "no such route")
        return {"zone": zone, "start": start, "end": end, "sites": 12, "curve": curve}

    return app


def test_forecast_prints_the_supply_and_the_size(buyer):
    served = ServedApps()
    try:
        url = served(_supply_app([{"price": "200000", "watts": 10_000}, {"price": "100000", "watts": 4_000},
                                  {"price": "300000", "watts": 12_500}]))
        result = buyer.run("forecast", "--zone", "4", "--start", "2030-01-01T18:00:00Z", "--end", "1893524400",
                           "--price", "0.25", "--api-url", url)
        assert result.exit_code == 0, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0] == "zone 4, 1893520800–1893524400, 12 sites"
        assert [line.split() for line in lines[2:5]] == [["0.1", "mUSD", "4"], ["0.2", "mUSD", "10"],
                                                        ["0.3", "mUSD", "12.5"]]
        assert lines[-1] == "to size a request at 80 % of the supply at price 0.25 mUSD: 8 kW"
        as_json = json.loads(buyer.run("forecast", "--zone", "4", "--start", "1893520800", "--end", "1893524400",
                                       "--api-url", url, "--json").stdout)
        assert as_json["sizeW"] == 10_000 and as_json["price"] == "300000"  # 80 % of 12.5 kW at the top price
        assert (as_json["holdoutBps"], as_json["sizeNetOfHoldoutW"]) == (0, 10_000)  # this market holds none out

        missing = served(_supply_app(None))
        result = buyer.run("forecast", "--zone", "4", "--start", "1893520800", "--end", "1893524400",
                           "--api-url", missing)
        assert result.exit_code == 2 and "has no forecasts" in result.stderr
        down = buyer.run("forecast", "--zone", "4", "--start", "1893520800", "--end", "1893524400")
        assert down.exit_code == 2 and "cannot be reached" in down.stderr
    finally:
        served.stop_all()


def test_the_password_is_prompted_for_and_a_wrong_one_refused(buyer):
    start = buyer.now() + 3_600
    wrong = buyer.run(*buyer.open_args(start, start + 3_600), NEGAWATT_BUYER_PASSWORD="not-it")
    assert wrong.exit_code == 2 and "wrong password for the keystore" in wrong.stderr
    assert buyer.nonce() == 0
    by_name = buyer.open_args(start, start + 3_600, **{"--token": "MockStablecoin"}) + ["--json"]  # manifest name
    prompted = CliRunner().invoke(buyer_app, by_name,
                                  env={**buyer.env, "NEGAWATT_BUYER_PASSWORD": ""}, input=PASSWORD + "\n")
    assert prompted.exit_code == 0, prompted.stderr
    assert PASSWORD not in prompted.stdout  # hidden
    opened = json.loads(prompted.stdout.strip().splitlines()[-1])
    assert opened["requestId"] == 1 and opened["funding"] == "permit" and len(opened["transactions"]) == 2
