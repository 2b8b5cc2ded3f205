"""A websocket subscription to new FlexMarket logs, used as a wake-up call for the request watcher.

Where the RPC offers websockets (ws:// or wss://; anvil and most nodes do), the node subscribes to
FlexMarket's logs (`eth_subscribe("logs")`) and, on each notification, polls at once instead of at
the next polling interval. The watcher's getLogs over confirmed blocks stays the source of truth
(it resumes from its cursor and respects confirmations), so a dropped connection or a missed
notification only costs latency; the subscription reconnects with back-off.
"""

from __future__ import annotations

import json
import logging
import threading

from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

log = logging.getLogger("negawatt.node.subscription")


def websocket_url(rpc_url: str) -> str:
    """The websocket URL of an RPC endpoint: as given for ws(s)://, derived from http(s)://."""
    if rpc_url.startswith(("ws://", "wss://")):
        return rpc_url
    if rpc_url.startswith("https://"):
        return "wss://" + rpc_url.removeprefix("https://")
    return "ws://" + rpc_url.removeprefix("http://")


def follow_logs(url: str, address: str, wake: threading.Event, stop: threading.Event,
                max_backoff: float = 30.0) -> None:
    """Set `wake` whenever a log of `address` arrives, until `stop`; reconnect on failures."""
    backoff = 1.0
    while not stop.is_set():
        try:
            with connect(url, open_timeout=5, close_timeout=1) as socket:
                socket.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_subscribe",
                                        "params": ["logs", {"address": address}]}))
                reply = json.loads(socket.recv(timeout=5))
                if "error" in reply:
                    log.info("the RPC refuses log subscriptions (%s); polling only", reply["error"])
                    return
                log.info("subscribed to FlexMarket logs over %s", url)
                backoff = 1.0
                while not stop.is_set():
                    try:
                        message = json.loads(socket.recv(timeout=1))
                    except TimeoutError:
                        continue
                    if message.get("method") == "eth_subscription":
                        wake.set()
        except (OSError, WebSocketException, TimeoutError, ValueError) as error:
            log.info("log subscription unavailable (%s); retrying in %.0f s", error, backoff)
            stop.wait(backoff)
            backoff = min(max_backoff, backoff * 2)


def start(rpc_url: str, address: str, wake: threading.Event, stop: threading.Event) -> threading.Thread:
    """Run `follow_logs` in a daemon thread."""
    thread = threading.Thread(target=follow_logs, args=(websocket_url(rpc_url), address, wake, stop),
                              name="log-subscription", daemon=True)
    thread.start()
    return thread
