"""Talking to the chain with web3.py and eth-account, as every role does at run time (no Ape).

`connect` opens a web3 connection for an RPC URL; `Transactor` signs and sends contract calls
from one local key, waits for the receipt and turns a revert into ChainError with the
contract's custom error decoded by name, so callers can log and react to it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils import function_abi_to_4byte_selector, to_checksum_address, to_hex
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError


class ChainError(RuntimeError):
    """A transaction or call failed; `error` is the decoded custom error name when known."""

    def __init__(self, message: str, error: str | None = None, args: tuple = ()):
        super().__init__(message)
        self.error = error
        self.error_args = args


def connect(rpc_url: str, timeout: float = 30.0) -> Web3:
    """A web3 connection to `rpc_url` (http(s) or ws(s)); raises ChainError if it does not answer."""
    if rpc_url.startswith(("ws://", "wss://")):
        raise ChainError("websocket RPC URLs are served by the subscription code; give an http(s) URL here")
    web3 = Web3(Web3.HTTPProvider(rpc_url, request_kwargs={"timeout": timeout}))
    if not web3.is_connected():
        raise ChainError(f"no JSON-RPC answer at {rpc_url}")
    return web3


def error_selectors(abi: list[dict]) -> dict[bytes, dict]:
    """4-byte selector → error ABI entry, for decoding reverts."""
    return {function_abi_to_4byte_selector(entry): entry for entry in abi if entry.get("type") == "error"}


def decode_revert(data: str | bytes, abis: list[list[dict]]) -> tuple[str, tuple] | None:
    """(error name, args) of revert data, looked up in the given ABIs; None if unknown."""
    from eth_abi import decode

    raw = bytes.fromhex(data[2:]) if isinstance(data, str) else bytes(data)
    if len(raw) < 4:
        return None
    for abi in abis:
        entry = error_selectors(abi).get(raw[:4])
        if entry is not None:
            types = [i["type"] if i["type"] != "tuple" else _tuple_type(i) for i in entry.get("inputs", [])]
            values = decode(types, raw[4:])
            return entry["name"], tuple(
                to_checksum_address(v) if t == "address" else v for t, v in zip(types, values)
            )
    return None


def _tuple_type(entry: dict) -> str:
    return "(" + ",".join(c["type"] if c["type"] != "tuple" else _tuple_type(c) for c in entry["components"]) + ")"


@dataclass
class Receipt:
    """What a caller needs from a mined transaction."""

    tx_hash: str
    block_number: int
    gas_used: int
    logs: list[Any]
    raw: Any


class Transactor:
    """Signs and sends transactions from one key, one at a time (nonces stay in order)."""

    def __init__(self, web3: Web3, key: bytes | str, abis: list[list[dict]] | None = None,
                 receipt_timeout: float = 120.0):
        self.web3 = web3
        self.account: LocalAccount = Account.from_key(key)
        self.abis = abis or []
        self.receipt_timeout = receipt_timeout
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        """The sender's checksummed address."""
        return self.account.address

    def send(self, call: Any, value: int = 0, gas: int | None = None) -> Receipt:
        """Sign and send a prepared contract call (`contract.functions.f(...)`), wait for the receipt.

        Raises ChainError with the decoded custom error if the call would revert or reverted.
        """
        with self._lock:
            tx_params = {"from": self.address, "value": value}
            try:
                estimated = call.estimate_gas(tx_params)
            except ContractCustomError as error:
                raise self._chain_error(error) from None
            except ContractLogicError as error:
                raise self._chain_error(error) from None
            tx = call.build_transaction({
                **tx_params,
                "gas": gas or int(estimated * 1.2) + 10_000,
                "nonce": self.web3.eth.get_transaction_count(self.address, "pending"),
                "chainId": self.web3.eth.chain_id,
            })
            signed = self.account.sign_transaction(tx)
            tx_hash = self.web3.eth.send_raw_transaction(signed.raw_transaction)
            receipt = self.web3.eth.wait_for_transaction_receipt(tx_hash, timeout=self.receipt_timeout)
        if receipt["status"] != 1:
            raise ChainError(f"transaction {to_hex(tx_hash)} reverted")
        return Receipt(to_hex(tx_hash), receipt["blockNumber"], receipt["gasUsed"], list(receipt["logs"]), receipt)

    def _chain_error(self, error: Exception) -> ChainError:
        data = getattr(error, "data", None)
        if isinstance(data, dict):
            data = data.get("data")
        decoded = decode_revert(data, self.abis) if isinstance(data, (str, bytes)) and data else None
        if decoded:
            name, args = decoded
            return ChainError(f"reverted with {name}{args}", name, args)
        return ChainError(f"reverted: {error}")
