"""The signature an oracle puts on the proposals it sends its peers (POST /v1/proposals).

Rule: a peer computes and signs an epoch only when an oracle of the on-chain set asks, recently.
The proposal body stays {"epoch", "previousRoot", "requestIds"}; the proposer signs, with its
oracle key, the EIP-712 message

    OracleProposal(address proposer,uint64 epoch,bytes32 previousRoot,bytes32 requestIdsHash,uint64 issuedAt)

under the negawatt domain with the OracleHub as verifying contract (so a signature is bound to one
chain and one hub). `requestIdsHash` is keccak256 of the ids, each a 32-byte big-endian word, in
the order sent (Solidity's abi.encodePacked(uint256[])). `issuedAt` is the proposer's "now" in unix
seconds (oracles' clocks follow the chain, protocol.clock): a receiver refuses a proposal issued
outside its skew window, so a recorded proposal cannot be replayed beyond it, and the epoch binds
it to one round anyway.

The signature travels in three headers beside the JSON body (HEADER_ORACLE, HEADER_ISSUED_AT,
HEADER_SIGNATURE). `credentials_of` checks their shape without any cryptography, so a receiver can
refuse garbage before it recovers a signer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from coincurve import PrivateKey
from eth_utils import keccak, to_checksum_address

from protocol.eip712 import DOMAIN_NAME, DOMAIN_VERSION
from protocol.fast_verify import domain_separator, recover_digest

PRIMARY_TYPE = "OracleProposal"
PROPOSAL_FIELDS: list[dict[str, str]] = [
    {"name": "proposer", "type": "address"},
    {"name": "epoch", "type": "uint64"},
    {"name": "previousRoot", "type": "bytes32"},
    {"name": "requestIdsHash", "type": "bytes32"},
    {"name": "issuedAt", "type": "uint64"},
]
PROPOSAL_TYPEHASH = keccak(
    (PRIMARY_TYPE + "(" + ",".join(f"{f['type']} {f['name']}" for f in PROPOSAL_FIELDS) + ")").encode())

HEADER_ORACLE = "X-Negawatt-Oracle"
HEADER_ISSUED_AT = "X-Negawatt-Issued-At"
HEADER_SIGNATURE = "X-Negawatt-Signature"
AUTH_SCHEME = "Negawatt-Oracle-EIP712"  # named in WWW-Authenticate on a 401

ADDRESS_PATTERN = r"^0x[0-9a-fA-F]{40}$"
ISSUED_AT_PATTERN = r"^[0-9]{1,12}$"
SIGNATURE_PATTERN = r"^0x[0-9a-fA-F]{130}$"
_ADDRESS = re.compile(ADDRESS_PATTERN[:-1])
_ISSUED_AT = re.compile(ISSUED_AT_PATTERN[:-1])
_SIGNATURE = re.compile(SIGNATURE_PATTERN[:-1])


@dataclass(frozen=True)
class ProposalCredentials:
    """Who claims to propose, when, and the signature (shape checked, not yet verified)."""

    proposer: str
    issued_at: int
    signature: bytes


def request_ids_hash(request_ids: Sequence[int]) -> bytes:
    """keccak256 of the ids as 32-byte big-endian words, in order (abi.encodePacked(uint256[]))."""
    return keccak(b"".join(int(i).to_bytes(32, "big") for i in request_ids))


def _root_bytes(previous_root: bytes | str) -> bytes:
    raw = previous_root if isinstance(previous_root, bytes) else bytes.fromhex(previous_root.removeprefix("0x"))
    if len(raw) != 32:
        raise ValueError("previousRoot must be 32 bytes")
    return raw


def proposal_digest(chain_id: int, hub: str, proposer: str, epoch: int, previous_root: bytes | str,
                    request_ids: Sequence[int], issued_at: int) -> bytes:
    """The 32-byte EIP-712 digest of one proposal (what the proposer signs)."""
    struct = keccak(PROPOSAL_TYPEHASH + bytes(12) + bytes.fromhex(proposer[2:]) + int(epoch).to_bytes(32, "big")
                    + _root_bytes(previous_root) + request_ids_hash(request_ids) + int(issued_at).to_bytes(32, "big"))
    return keccak(b"\x19\x01" + domain_separator(chain_id, hub) + struct)


def typed_proposal(chain_id: int, hub: str, proposer: str, epoch: int, previous_root: bytes | str,
                   request_ids: Sequence[int], issued_at: int) -> dict[str, Any]:
    """The full EIP-712 document of one proposal (for eth_signTypedData_v4 and cross-checks)."""
    return {
        "types": {"EIP712Domain": [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                                   {"name": "chainId", "type": "uint256"},
                                   {"name": "verifyingContract", "type": "address"}],
                  PRIMARY_TYPE: PROPOSAL_FIELDS},
        "primaryType": PRIMARY_TYPE,
        "domain": {"name": DOMAIN_NAME, "version": DOMAIN_VERSION, "chainId": int(chain_id),
                   "verifyingContract": to_checksum_address(hub)},
        "message": {"proposer": to_checksum_address(proposer), "epoch": int(epoch),
                    "previousRoot": _root_bytes(previous_root), "requestIdsHash": request_ids_hash(request_ids),
                    "issuedAt": int(issued_at)},
    }


def sign_proposal(private_key: bytes, chain_id: int, hub: str, epoch: int, previous_root: bytes | str,
                  request_ids: Sequence[int], issued_at: int) -> dict[str, str]:
    """The three headers that authenticate a proposal sent by the holder of `private_key`."""
    key = PrivateKey(bytes(private_key))
    proposer = to_checksum_address(keccak(key.public_key.format(compressed=False)[1:])[-20:])
    digest = proposal_digest(chain_id, hub, proposer, epoch, previous_root, request_ids, issued_at)
    raw = key.sign_recoverable(digest, hasher=None)  # r || s || v in {0, 1}, low s
    signature = raw[:64] + bytes([raw[64] + 27])
    return {HEADER_ORACLE: proposer, HEADER_ISSUED_AT: str(int(issued_at)), HEADER_SIGNATURE: "0x" + signature.hex()}


def credentials_of(headers: Mapping[str, str]) -> ProposalCredentials | None:
    """The proposal's credentials if all three headers are present and well formed, else None."""
    proposer, issued_at, signature = (headers.get(name) for name in (HEADER_ORACLE, HEADER_ISSUED_AT,
                                                                       HEADER_SIGNATURE))
    if proposer is None or issued_at is None or signature is None:
        return None
    if not (_ADDRESS.fullmatch(proposer) and _ISSUED_AT.fullmatch(issued_at) and _SIGNATURE.fullmatch(signature)):
        return None
    return ProposalCredentials(to_checksum_address(proposer), int(issued_at), bytes.fromhex(signature[2:]))


def proposal_signer(credentials: ProposalCredentials, chain_id: int, hub: str, epoch: int,
                    previous_root: bytes | str, request_ids: Sequence[int]) -> str | None:
    """The address that signed this proposal with these credentials, or None if it does not recover."""
    digest = proposal_digest(chain_id, hub, credentials.proposer, epoch, previous_root, request_ids,
                             credentials.issued_at)
    try:
        return recover_digest(digest, credentials.signature)
    except ValueError:
        return None
