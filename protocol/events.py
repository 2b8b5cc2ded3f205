"""Typed decoding of the negawatt contracts' logs, from the ABIs in the deployment manifest.

`EventDecoder` knows every (non-anonymous) event of the chosen contracts by (address, topic0) and
turns a raw `eth_getLogs` entry into a `ChainEvent`: where it is on the chain, which contract
emitted it, the event's name and its arguments as plain JSON-ready values (bytes as 0x-hex,
addresses checksummed, structs as dicts). Logs of other contracts or unknown events decode to None.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import event_abi_to_log_topic, to_checksum_address
from web3 import Web3
from web3._utils.events import get_event_data

from protocol.manifest import REQUIRED_CONTRACTS, Manifest

JS_SAFE = 2**53 - 1


@dataclass(frozen=True)
class ChainEvent:
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
    """Knows every event of the deployment's `contracts` by (address, topic0)."""

    def __init__(self, manifest: Manifest | None, web3: Web3 | None = None,
                 contracts: tuple[str, ...] = REQUIRED_CONTRACTS, events: tuple[str, ...] | None = None):
        """`events`, when given, limits decoding to the events of those names."""
        self.codec = (web3 or Web3()).codec
        self.addresses: dict[str, str] = {}
        self._events: dict[tuple[str, bytes], dict] = {}
        self._only = events
        for name in contracts if manifest is not None else ():
            entry = manifest.contracts[name]
            self.add(name, entry.address, entry.abi)

    @classmethod
    def for_contract(cls, contract: Any, name: str, events: tuple[str, ...] | None = None) -> "EventDecoder":
        """A decoder for one web3 contract object (its address and ABI), named `name`."""
        decoder = cls(None, contract.w3, contracts=(), events=events)
        decoder.add(name, contract.address, contract.abi)
        return decoder

    def add(self, name: str, address: str, abi: list[dict]) -> None:
        """Decode the events of the contract `name` at `address` with `abi`."""
        self.addresses[address.lower()] = name
        for item in abi:
            if item.get("type") == "event" and not item.get("anonymous"):
                if self._only is None or item["name"] in self._only:
                    self._events[(address.lower(), event_abi_to_log_topic(item))] = item

    @property
    def address_list(self) -> list[str]:
        """Checksummed addresses of the decoded contracts (the eth_getLogs filter)."""
        return [to_checksum_address(address) for address in self.addresses]

    def decode(self, log: Any) -> ChainEvent | None:
        """The decoded event of a raw log, or None for a log this decoder does not know."""
        address = str(log["address"]).lower()
        topics = log["topics"]
        if not topics:
            return None
        abi = self._events.get((address, bytes(topics[0])))
        if abi is None:
            return None
        data = get_event_data(self.codec, abi, log)
        return ChainEvent(
            block=int(log["blockNumber"]),
            block_hash="0x" + bytes(log["blockHash"]).hex(),
            log_index=int(log["logIndex"]),
            tx_hash="0x" + bytes(log["transactionHash"]).hex(),
            contract=self.addresses[address],
            name=abi["name"],
            args={key: plain(value) for key, value in data["args"].items()},
        )
