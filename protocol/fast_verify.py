"""Fast recovery of EIP-712 signers for the messages oracles verify in bulk.

eth-account builds each typed-data document anew and recovers in pure Python (about 200
signatures/s here). Oracles verify every meter batch of every device, so this module computes the
same EIP-712 digest directly (precomputed domain separator and type hashes, fixed-width
encoding) and recovers the public key with libsecp256k1 (coincurve). The tests check it against
eth-account on random messages.

`BulkBatchVerifier` checks many meter batches at once (a peer's page during peer sync): the same
digests and the same signature rules, compared as raw address bytes, optionally over a process pool.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

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


# ------------------------------------------------------------------------------------------------
# bulk verification: many meter batches at once (peer sync, history uploads)


def _packed_readings_hash(readings: tuple[int, ...] | list[int]) -> bytes:
    """readings_hash (protocol.meter) with one struct.pack instead of a Python loop; same bytes."""
    try:
        return keccak(struct.pack(f">{len(readings)}I", *readings))
    except struct.error as error:
        raise ValueError(f"a reading is out of uint32 range: {error}") from None


def batch_digests(separator: bytes, batches: Sequence[MeterBatch]) -> list[bytes | ValueError]:
    """The EIP-712 digest of each batch under the domain `separator` (a ValueError in place of a batch
    whose fields cannot be encoded), as RegistryDomainVerifier.batch_digest computes it one by one."""
    prefix = b"\x19\x01" + separator
    out: list[bytes | ValueError] = []
    for batch in batches:
        try:
            struct_hash = keccak(METER_BATCH_TYPEHASH + _address_word(batch.device) + _word(batch.start)
                                 + _word(batch.interval_seconds) + _packed_readings_hash(batch.readings)
                                 + _word(batch.sequence))
        except (ValueError, OverflowError) as error:
            out.append(ValueError(str(error)))
            continue
        out.append(keccak(prefix + struct_hash))
    return out


def recover_raw_signers(pairs: Sequence[tuple[bytes, bytes]]) -> list[bytes | str]:
    """For each (digest, 65-byte signature), the signer's 20 address bytes, or the reason (a str) the
    signature is refused, with recover_digest's rules (v, low s). Plain data in and out, so a process
    pool can run it on slices."""
    out: list[bytes | str] = []
    half_n = _SECP256K1_N // 2
    from_signature = PublicKey.from_signature_and_message
    for digest, signature in pairs:
        if len(signature) != 65:
            out.append(f"signature must be 65 bytes, got {len(signature)}")
            continue
        v = signature[64]
        if v >= 27:
            v -= 27
        if v not in (0, 1):
            out.append("signature v must be 27 or 28")
            continue
        s = int.from_bytes(signature[32:64], "big")
        if s == 0 or s > half_n:
            out.append("signature s is zero or not in the lower half order")
            continue
        try:
            public = from_signature(signature[:64] + bytes((v,)), digest, hasher=None)
        except Exception as error:  # coincurve raises plain Exception on invalid points
            out.append(f"signature does not recover: {error}")
            continue
        out.append(keccak(public.format(compressed=False)[1:])[-20:])
    return out


@dataclass(frozen=True)
class BatchCheck:
    """The outcome of one batch's signature check: `ok` when the claimed device signed it; otherwise
    `reason` says what is wrong (malformed field, malformed signature, or who signed instead).
    `digest` is the batch's EIP-712 digest when it could be computed (empty otherwise)."""

    ok: bool
    reason: str = ""
    digest: bytes = b""


class BulkBatchVerifier:
    """Checks that each of many meter batches is signed by the device it names, under one
    DeviceRegistry's domain: digests in this process, signer recovery in a tight loop or, with
    `processes` > 1, split over a process pool (worth it only for large sets: each slice is pickled)."""

    def __init__(self, separator: bytes, processes: int = 1, min_per_process: int = 2_000):
        self.separator = separator
        self.processes = max(1, processes)
        self.min_per_process = max(1, min_per_process)
        self._pool: ProcessPoolExecutor | None = None

    @classmethod
    def for_registry(cls, chain_id: int, registry: str, processes: int = 1) -> "BulkBatchVerifier":
        """A verifier for one DeviceRegistry's domain (RegistryDomainVerifier has its `separator`)."""
        return cls(domain_separator(chain_id, registry), processes)

    def check(self, batches: Sequence[MeterBatch]) -> list[BatchCheck]:
        """One BatchCheck per batch, in order."""
        digests = batch_digests(self.separator, batches)
        pairs: list[tuple[bytes, bytes]] = []
        positions: list[int] = []
        checks: list[BatchCheck | None] = [None] * len(batches)
        for index, (batch, digest) in enumerate(zip(batches, digests)):
            if isinstance(digest, ValueError):
                checks[index] = BatchCheck(False, f"not encodable: {digest}")
            else:
                pairs.append((digest, bytes(batch.signature)))
                positions.append(index)
        for index, signer, (digest, _signature) in zip(positions, self._recover(pairs), pairs):
            checks[index] = _compare(batches[index].device, signer, digest)
        return checks  # type: ignore[return-value]

    def _recover(self, pairs: list[tuple[bytes, bytes]]) -> list[bytes | str]:
        workers = min(self.processes, len(pairs) // self.min_per_process)
        if workers <= 1:
            return recover_raw_signers(pairs)
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.processes)
        size = -(-len(pairs) // workers)
        slices = [pairs[i:i + size] for i in range(0, len(pairs), size)]
        out: list[bytes | str] = []
        for part in self._pool.map(recover_raw_signers, slices):
            out.extend(part)
        return out

    def close(self) -> None:
        """Stop the process pool, if one was started."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _compare(claimed: str, signer: bytes | str, digest: bytes = b"") -> BatchCheck:
    if isinstance(signer, str):
        return BatchCheck(False, signer, digest)
    try:
        claimed_raw = bytes.fromhex(claimed[2:] if claimed[:2] in ("0x", "0X") else claimed)
    except ValueError:
        return BatchCheck(False, f"not an address: {claimed}", digest)
    if signer != claimed_raw:
        return BatchCheck(False, f"signed by {to_checksum_address(signer)}, not by {to_checksum_address(claimed_raw)}"
                          if len(claimed_raw) == 20 else f"not an address: {claimed}", digest)
    return BatchCheck(True, digest=digest)
