"""Decoding the negawatt contracts' logs (from the manifest's ABIs) into plain, JSON-ready events."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import event_abi_to_log_topic, to_checksum_address
from web3 import Web3
from web3._utils.events import get_event_data

from protocol.manifest import REQUIRED_CONTRACTS, Manifest

JS_SAFE = 2**53 - 1


@dataclass(frozen=True)
class ChainLog:
    """One decoded event: where it is on the chain, which contract emitted it, its arguments."""

    block: int
    block_hash: str
    log_index: int
    tx_hash: str
    contract: str
    name: str
    args: dict[str, Any]


def plain(value: Any) -> Any:
    """A decoded ABI value as JSON: bytes as 0x-hex, addresses checksummed, structs as dicts."""
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, bool):
        return value
    if isinstance(value, dict) or hasattr(value, "items"):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, str) and len(value) == 42 and value.startswith("0x"):
        try:
            return to_checksum_address(value)
        except ValueError:
            return value
    return value


def json_safe(value: Any) -> Any:
    """`value` with integers beyond 2**53 as decimal strings (JavaScript clients keep precision)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value) if abs(value) > JS_SAFE else value
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [json_safe(item) for item in value]
    return value


class EventDecoder:
    """Knows every event of the deployment's contracts by (address, topic0)."""

    def __init__(self, manifest: Manifest, web3: Web3 | None = None, contracts: tuple[str, ...] = REQUIRED_CONTRACTS):
        self.codec = (web3 or Web3()).codec
        self.addresses: dict[str, str] = {}
        self._events: dict[tuple[str, bytes], dict] = {}
        for name in contracts:
            entry = manifest.contracts[name]
            self.addresses[entry.address.lower()] = name
            for item in entry.abi:
                if item.get("type") == "event" and not item.get("anonymous"):
                    self._events[(entry.address.lower(), event_abi_to_log_topic(item))] = item

    @property
    def address_list(self) -> list[str]:
        """Checksummed addresses of the indexed contracts (the eth_getLogs filter)."""
        return [to_checksum_address(address) for address in self.addresses]

    def decode(self, log: Any) -> ChainLog | None:
        """The decoded event of a raw log, or None for a log this deployment does not define."""
        address = str(log["address"]).lower()
        topics = log["topics"]
        if not topics:
            return None
        abi = self._events.get((address, bytes(topics[0])))
        if abi is None:
            return None
        data = get_event_data(self.codec, abi, log)
        return ChainLog(
            block=int(log["blockNumber"]),
            block_hash="0x" + bytes(log["blockHash"]).hex(),
            log_index=int(log["logIndex"]),
            tx_hash="0x" + bytes(log["transactionHash"]).hex(),
            contract=self.addresses[address],
            name=abi["name"],
            args={key: plain(value) for key, value in data["args"].items()},
        )
