"""EIP-712 messages of the negawatt protocol, signed and verified with eth-account.

Every message is signed under the domain {name: "negawatt", version: "1", chainId,
verifyingContract}. The verifying contract is the one that checks (or anchors) the message:
DeviceRegistry for DevicePermit, DeviceAtSitePermit, MeterBatch, Commitment and FlexForecast;
OracleHub for SettlementReport and Allocation.

A Commitment is a device's offer to a request: `watts` at no less than `minPricePerKWh`, and
optionally a second, less certain tranche of `extraWatts` at `extraMinPricePerKWh` (0 watts: none).
A FlexForecast is a site's signed day-ahead forecast of what it could shed (protocol.forecast).
An Allocation is a request's clearing result, k-of-n signed by oracles (protocol.clearing).
"""

from __future__ import annotations

from typing import Any, Mapping

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak, to_checksum_address

DOMAIN_NAME = "negawatt"
DOMAIN_VERSION = "1"

MESSAGE_TYPES: dict[str, list[dict[str, str]]] = {
    "DevicePermit": [
        {"name": "owner", "type": "address"},
        {"name": "device", "type": "address"},
        {"name": "kind", "type": "uint8"},
        {"name": "capacityW", "type": "uint32"},
        {"name": "zone", "type": "uint32"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
    "DeviceAtSitePermit": [
        {"name": "owner", "type": "address"},
        {"name": "device", "type": "address"},
        {"name": "site", "type": "address"},
        {"name": "kind", "type": "uint8"},
        {"name": "capacityW", "type": "uint32"},
        {"name": "nonce", "type": "uint256"},
        {"name": "deadline", "type": "uint256"},
    ],
    "MeterBatch": [
        {"name": "device", "type": "address"},
        {"name": "start", "type": "uint64"},
        {"name": "intervalSeconds", "type": "uint32"},
        {"name": "readingsHash", "type": "bytes32"},
        {"name": "sequence", "type": "uint64"},
    ],
    "Commitment": [
        {"name": "requestId", "type": "uint256"},
        {"name": "device", "type": "address"},
        {"name": "watts", "type": "uint64"},
        {"name": "minPricePerKWh", "type": "uint128"},
        {"name": "extraWatts", "type": "uint64"},
        {"name": "extraMinPricePerKWh", "type": "uint128"},
        {"name": "minAvailabilityPricePerKWh", "type": "uint128"},
    ],
    "FlexForecast": [
        {"name": "site", "type": "address"},
        {"name": "zone", "type": "uint32"},
        {"name": "start", "type": "uint64"},
        {"name": "hours", "type": "uint32"},
        {"name": "offersHash", "type": "bytes32"},
        {"name": "sequence", "type": "uint64"},
    ],
    "Allocation": [
        {"name": "requestId", "type": "uint256"},
        {"name": "root", "type": "bytes32"},
        {"name": "acceptedW", "type": "uint64"},
        {"name": "clearingPrice", "type": "uint128"},
        {"name": "availabilityPrice", "type": "uint128"},
    ],
    "SettlementReport": [
        {"name": "epoch", "type": "uint64"},
        {"name": "previousRoot", "type": "bytes32"},
        {"name": "rewardsRoot", "type": "bytes32"},
        {"name": "requestsHash", "type": "bytes32"},
        {"name": "penaltiesHash", "type": "bytes32"},
        {"name": "emission", "type": "uint256"},
    ],
}

_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


def domain(chain_id: int, verifying_contract: str) -> dict[str, Any]:
    """The negawatt EIP-712 domain on one chain, for one verifying contract."""
    return {
        "name": DOMAIN_NAME,
        "version": DOMAIN_VERSION,
        "chainId": int(chain_id),
        "verifyingContract": to_checksum_address(verifying_contract),
    }


def typed_data(primary_type: str, message: Mapping[str, Any], chain_id: int, verifying_contract: str) -> dict:
    """The full EIP-712 document (as wallets and eth_signTypedData_v4 take it) for one message."""
    if primary_type not in MESSAGE_TYPES:
        raise ValueError(f"unknown negawatt message type {primary_type!r}")
    return {
        "types": {"EIP712Domain": _DOMAIN_TYPE, primary_type: MESSAGE_TYPES[primary_type]},
        "primaryType": primary_type,
        "domain": domain(chain_id, verifying_contract),
        "message": dict(message),
    }


def sign(private_key: bytes | str, primary_type: str, message: Mapping[str, Any], chain_id: int,
         verifying_contract: str) -> bytes:
    """Sign one message; returns the 65-byte r||s||v signature contracts accept."""
    signable = encode_typed_data(full_message=typed_data(primary_type, message, chain_id, verifying_contract))
    return bytes(Account.sign_message(signable, private_key).signature)


def digest(primary_type: str, message: Mapping[str, Any], chain_id: int, verifying_contract: str) -> bytes:
    """The 32-byte EIP-712 digest of one message (what is signed, and what contracts compute)."""
    signable = encode_typed_data(full_message=typed_data(primary_type, message, chain_id, verifying_contract))
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def recover(primary_type: str, message: Mapping[str, Any], signature: bytes, chain_id: int,
            verifying_contract: str) -> str:
    """The checksummed address that signed `message` (raises on a malformed signature)."""
    signable = encode_typed_data(full_message=typed_data(primary_type, message, chain_id, verifying_contract))
    return Account.recover_message(signable, signature=signature)


