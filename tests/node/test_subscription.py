"""The websocket log subscription wakes the node as soon as FlexMarket emits a log (anvil serves
websockets on its RPC port), and an endpoint without websockets only costs retries."""

from __future__ import annotations

import threading
import time

from negawatt.localchain import free_port
from node.subscription import follow_logs, websocket_url
from protocol.chain import Transactor


def test_a_new_request_wakes_the_node(devnet):
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
        time.sleep(1.0)  # subscribed
        assert not wake.is_set()
        usd_only = buyer.send(usd.functions.mint(buyer.address, 1))  # another contract's log: no wake-up
        assert usd_only.block_number and not wake.wait(1.0)
        start = web3.eth.get_block("latest")["timestamp"] + 600
        buyer.send(market.functions.openRequest(1, start, start + 600, 1_000, 1, usd.address, 10))
        assert wake.wait(5.0)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_no_websocket_endpoint_is_retried_without_failing():
    wake, stop = threading.Event(), threading.Event()
    thread = threading.Thread(target=follow_logs, args=(f"ws://127.0.0.1:{free_port()}", "0x" + "11" * 20, wake,
                                                        stop, 0.2), daemon=True)
    thread.start()
    time.sleep(1.0)
    assert thread.is_alive() and not wake.is_set()
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()


def test_websocket_url_is_derived_from_the_rpc_url():
    assert websocket_url("http://127.0.0.1:8545") == "ws://127.0.0.1:8545"
    assert websocket_url("https://rpc.example.org/v1") == "wss://rpc.example.org/v1"
    assert websocket_url("wss://x") == "wss://x"
