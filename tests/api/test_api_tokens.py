"""Issue 15 #4: the API states each token's symbol and decimals (`GET /v1/tokens`), read from the
chain once: the stake token (NEGA) and the devnet's stablecoin at start, a payment token first
seen in a RequestOpened after the range that brought it; a contract that is no ERC-20 is stored
with the reason and no units."""

from __future__ import annotations

import json

from conftest import http, indexed_to_head, wait_for
from sqlalchemy import create_engine, text

from api.tokens import TokenBook, TokenLookupError
from negawatt.localchain import REPO


def _deploy_stablecoin(chain):
    artifact = json.loads((REPO / ".build" / "__local__.json").read_text())["contractTypes"]["MockStablecoin"]
    factory = chain.web3.eth.contract(abi=artifact["abi"], bytecode=artifact["deploymentBytecode"]["bytecode"])
    receipt = chain.buyer.send(factory.constructor())
    return chain.web3.eth.contract(address=receipt.raw["contractAddress"], abi=artifact["abi"])


def _tokens_when(client, count: int):
    body = client.get("/v1/tokens").json()
    return body if len(body["items"]) == count else None


def test_tokens_with_symbol_decimals_and_role(chain, start_api, tmp_path):
    database = str(tmp_path / "api.sqlite")
    url, _app = start_api(chain, database=database)
    client = http(url)
    indexed_to_head(client, chain)
    body = wait_for(lambda: _tokens_when(client, 2), 30, "the stake token and the stablecoin")
    tokens = {item["address"]: item for item in body["items"]}
    nega = tokens[chain.token.address]
    assert (nega["symbol"], nega["decimals"], nega["roles"], nega["error"]) == (
        chain.token.functions.symbol().call(), 18, ["stake"], None)
    assert nega["name"] == chain.token.functions.name().call()
    usd = tokens[chain.stablecoin.address]
    assert (usd["symbol"], usd["name"], usd["decimals"], usd["roles"]) == ("mUSD", "Mock USD", 6, ["payment"])

    # a buyer pays a request in another ERC-20: it is looked up once the request is indexed
    other = _deploy_stablecoin(chain)
    start = chain.now() + 120
    chain.buyer.send(other.functions.mint(chain.buyer.address, 10**9))
    chain.buyer.send(other.functions.approve(chain.market.address, 10**9))
    chain.buyer.send(chain.market.functions.openRequest(4, start, start + 120, 5_000, 200_000, other.address, 10**9))
    indexed_to_head(client, chain)
    body = wait_for(lambda: _tokens_when(client, 3), 30, "the new payment token")
    found = next(item for item in body["items"] if item["address"] == other.address)
    assert (found["symbol"], found["decimals"], found["roles"]) == ("mUSD", 6, ["payment"])
    addresses = [item["address"] for item in body["items"]]
    assert addresses == sorted(addresses)

    # looked up once: the row is not rewritten by later polls
    engine = create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        first = connection.execute(text("SELECT looked_up_at FROM tokens WHERE address = :a"),
                                   {"a": other.address}).scalar_one()
    chain.register()
    indexed_to_head(client, chain)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT looked_up_at FROM tokens WHERE address = :a"),
                                  {"a": other.address}).scalar_one() == first
        assert connection.execute(text("SELECT COUNT(*) FROM tokens")).scalar_one() == 3


def test_a_contract_that_is_no_erc20_is_refused_with_the_reason(chain, tmp_path):
    from api.db import make_engine
    from api.migrate import upgrade

    engine = make_engine(str(tmp_path / "tokens.sqlite"))
    upgrade(engine)
    book = TokenBook(engine, chain.web3, chain.token.address)
    for address in (chain.registry.address, "0x" + "42" * 20):  # a contract without symbol(), an empty account
        try:
            book.read(address)
        except TokenLookupError as error:
            assert "symbol()" in str(error)
        else:
            raise AssertionError(f"{address} was read as a token")
    assert book.read(chain.stablecoin.address) == {"symbol": "mUSD", "name": "Mock USD", "decimals": 6}
