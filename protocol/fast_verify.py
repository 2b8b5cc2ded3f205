"""Fast recovery of EIP-712 signers for the messages oracles verify in bulk.

eth-account builds each typed-data document anew and recovers in pure Python (about 200
signatures/s here). Oracles verify every meter batch of every device, so this module computes the
same EIP-712 digest directly (precomputed domain separator and type hashes, fixed-width
encoding) and recovers the public key with libsecp256k1 (coincurve). The tests check it against
eth-account on random messages.
"""

from __future__ import annotations

from coincurve import PublicKey
from eth_utils import keccak, to_checksum_address

from protocol.eip712 import DOMAIN_NAME, DOMAIN_VERSION, MESSAGE_TYPES
from protocol.meter import Commitment, MeterBatch, readings_hash

_DOMAIN_TYPEHASH = keccak(b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)")
_SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def _type_string(primary: str) -> bytes:
    fields = ",".join(f"{f['type']} {f['name']}" for f in MESSAGE_TYPES[primary])
    return f"{primary}({fields})".encode()


METER_BATCH_TYPEHASH = keccak(_type_string("MeterBatch"))
COMMITMENT_TYPEHASH = keccak(_type_string("Commitment"))


def _word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def _address_word(address: str) -> bytes:
    raw = bytes.fromhex(address[2:] if address[:2] in ("0x", "0X") else address)
    if len(raw) != 20:
        raise ValueError(f"not an address: {address}")
    return bytes(12) + raw


def domain_separator(chain_id: int, verifying_contract: str) -> bytes:
    """The EIP-712 domain separator of the negawatt domain for one contract."""
    return keccak(
        _DOMAIN_TYPEHASH
        + keccak(DOMAIN_NAME.encode())
        + keccak(DOMAIN_VERSION.encode())
        + _word(chain_id)
        + _address_word(verifying_contract)
    )


def recover_digest(digest: bytes, signature: bytes) -> str:
    """The checksummed address that produced a 65-byte r||s||v signature of `digest`.

    Rejects malformed signatures, v not in {27, 28} (or {0, 1}), and high-s values (as
    OpenZeppelin's ECDSA does), raising ValueError.
    """
    if len(signature) != 65:
        raise ValueError(f"signature must be 65 bytes, got {len(signature)}")
    v = signature[64]
    if v >= 27:
        v -= 27
    if v not in (0, 1):
        raise ValueError("signature v must be 27 or 28")
    s = int.from_bytes(signature[32:64], "big")
    if s == 0 or s > _SECP256K1_N // 2:
        raise ValueError("signature s is zero or not in the lower half order")
    try:
        public = PublicKey.from_signature_and_message(signature[:64] + bytes([v]), digest, hasher=None)
    except Exception as error:  # coincurve raises plain Exception on invalid points
        raise ValueError(f"signature does not recover: {error}") from None
    return to_checksum_address(keccak(public.format(compressed=False)[1:])[-20:])


class RegistryDomainVerifier:
    """Recovers signers of MeterBatch and Commitment messages under one DeviceRegistry's domain."""

    def __init__(self, chain_id: int, registry: str):
        self.separator = domain_separator(chain_id, registry)

    def batch_digest(self, batch: MeterBatch) -> bytes:
        """The EIP-712 digest a device signs for `batch`."""
        struct = keccak(
            METER_BATCH_TYPEHASH
            + _address_word(batch.device)
            + _word(batch.start)
            + _word(batch.interval_seconds)
            + readings_hash(batch.readings)
            + _word(batch.sequence)
        )
        return keccak(b"\x19\x01" + self.separator + struct)

    def commitment_digest(self, commitment: Commitment) -> bytes:
        """The EIP-712 digest a device signs for `commitment`."""
        struct = keccak(
            COMMITMENT_TYPEHASH + _word(commitment.request_id) + _address_word(commitment.device)
            + _word(commitment.watts) + _word(commitment.min_price_per_kwh) + _word(commitment.extra_watts)
            + _word(commitment.extra_min_price_per_kwh) + _word(commitment.min_availability_price_per_kwh)
        )
        return keccak(b"\x19\x01" + self.separator + struct)

    def batch_signer(self, batch: MeterBatch) -> str:
        """Who signed `batch` (raises ValueError for a malformed signature)."""
        return recover_digest(self.batch_digest(batch), batch.signature)

    def commitment_signer(self, commitment: Commitment) -> str:
        """Who signed `commitment` (raises ValueError for a malformed signature)."""
        return recover_digest(self.commitment_digest(commitment), commitment.signature)
