"""The websocket log subscription wakes the node as soon as FlexMarket emits a log (anvil serves
websockets on its RPC port), and an endpoint without websockets only costs retries."""

from __future__ import annotations

import logging
import threading

from negawatt.localchain import free_port
from node.subscription import follow_logs, websocket_url
from protocol.chain import Transactor
from waiting import wait_for

SUBSCRIPTION_LOG = "negawatt.node.subscription"


def _logged(caplog, text: str) -> int:
    """How many records of the subscription's logger contain `text`."""
    return sum(1 for r in caplog.records if r.name == SUBSCRIPTION_LOG and text in r.getMessage())


def test_a_new_request_wakes_the_node(devnet, caplog):
    caplog.set_level(logging.INFO, logger=SUBSCRIPTION_LOG)
    web3, manifest = devnet.web3(), devnet.manifest()
    market, usd = manifest.contract(web3, "FlexMarket"), manifest.contract(web3, "MockStablecoin")
    buyer = Transactor(web3, devnet.keys[2], abis=[e.abi for e in manifest.contracts.values()])
    buyer.send(usd.functions.mint(buyer.address, 10**9))
    buyer.send(usd.functions.approve(market.address, 10**9))
    wake, stop = threading.Event(), threading.Event()
    thread = threading.Thread(target=follow_logs, args=(websocket_url(devnet.rpc_url), market.address, wake, stop),
                              daemon=True)
    thread.start()
    try:
        wait_for(lambda: _logged(caplog, "subscribed to FlexMarket logs"), timeout=30, what="the subscription")
        assert not wake.is_set()  # subscribed: from here on, a wrongly filtered log would wake it
        usd_only = buyer.send(usd.functions.mint(buyer.address, 1))  # another contract's log: no wake-up
        assert usd_only.block_number and not wake.wait(1.0)
        start = web3.eth.get_block("latest")["timestamp"] + 600
        buyer.send(market.functions.openRequest(1, start, start + 600, 1_000, 1, usd.address, 10))
        wait_for(wake.is_set, timeout=30, what="the wake-up by the FlexMarket log")
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_no_websocket_endpoint_is_retried_without_failing(caplog):
    caplog.set_level(logging.INFO, logger=SUBSCRIPTION_LOG)
    wake, stop = threading.Event(), threading.Event()
    thread = threading.Thread(target=follow_logs, args=(f"ws://127.0.0.1:{free_port()}", "0x" + "11" * 20, wake,
                                                        stop, 0.2), daemon=True)
    thread.start()
    wait_for(lambda: _logged(caplog, "retrying in") >= 2, timeout=30, what="two failed connection attempts")
    assert thread.is_alive() and not wake.is_set()
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_websocket_url_is_derived_from_the_rpc_url():
    assert websocket_url("http://127.0.0.1:8545") == "ws://127.0.0.1:8545"
    assert websocket_url("https://rpc.example.org/v1") == "wss://rpc.example.org/v1"
    assert websocket_url("wss://x") == "wss://x"
