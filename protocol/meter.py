"""Signed meter data and commitments, as nodes send them to the oracles.

A MeterBatch is `len(readings)` consecutive intervals of one device, starting at `start` (unix
seconds, a multiple of `interval_seconds`), each reading the integer Wh the device consumed in
that interval. The device key signs the EIP-712 MeterBatch(device, start, intervalSeconds,
readingsHash, sequence) under the DeviceRegistry's domain, where

    readingsHash = keccak256(reading_0 || reading_1 || ...), each reading a 4-byte big-endian uint32

(`abi.encodePacked(uint32[])`). `sequence` counts a device's batches from 0, so an oracle sees a
replay (same sequence again) and a gap (a sequence skipped).
A Commitment(requestId, device, watts, minPricePerKWh, extraWatts, extraMinPricePerKWh) is the
device's offer to a request: up to `watts` at a clearing price of at least `minPricePerKWh` (token
base units per kWh), and optionally a second, less certain tranche of `extraWatts` at
`extraMinPricePerKWh` (no lower than the first tranche's price). The market accepts part or all of
it (protocol.clearing); the device curtails only what was accepted.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from eth_utils import keccak, to_checksum_address

from protocol import eip712

MAX_READING_WH = 2**32 - 1


def readings_hash(readings: list[int] | tuple[int, ...]) -> bytes:
    """keccak256 of the readings packed as 4-byte big-endian unsigned integers."""
    packed = bytearray()
    for value in readings:
        if not 0 <= value <= MAX_READING_WH:
            raise ValueError(f"reading out of uint32 range: {value}")
        packed += value.to_bytes(4, "big")
    return keccak(bytes(packed))


@dataclass(frozen=True)
class MeterBatch:
    """Consecutive interval readings of one device (Wh per interval)."""

    device: str
    start: int
    interval_seconds: int
    readings: tuple[int, ...]
    sequence: int
    signature: bytes = field(default=b"", compare=False)

    @property
    def end(self) -> int:
        """Unix time just after the last interval."""
        return self.start + self.interval_seconds * len(self.readings)

    def message(self) -> dict:
        """The EIP-712 message fields."""
        return {
            "device": to_checksum_address(self.device),
            "start": self.start,
            "intervalSeconds": self.interval_seconds,
            "readingsHash": readings_hash(self.readings),
            "sequence": self.sequence,
        }

    def signed(self, device_key: bytes | str, chain_id: int, registry: str) -> "MeterBatch":
        """This batch with the device key's signature attached."""
        signature = eip712.sign(device_key, "MeterBatch", self.message(), chain_id, registry)
        return MeterBatch(self.device, self.start, self.interval_seconds, self.readings, self.sequence, signature)

    def signer(self, chain_id: int, registry: str) -> str:
        """The address that signed this batch."""
        return eip712.recover("MeterBatch", self.message(), self.signature, chain_id, registry)


@dataclass(frozen=True)
class Commitment:
    """A device's offer to curtail during request `request_id`: `watts` at no less than
    `min_price_per_kwh`, plus an optional less certain tranche (`extra_watts` at
    `extra_min_price_per_kwh`; 0 watts: none). For a request that pays availability, the
    accepted watts must also earn at least `min_availability_price_per_kwh` per kW per hour."""

    request_id: int
    device: str
    watts: int
    min_price_per_kwh: int = 0
    extra_watts: int = 0
    extra_min_price_per_kwh: int = 0
    min_availability_price_per_kwh: int = 0
    signature: bytes = field(default=b"", compare=False, kw_only=True)

    def message(self) -> dict:
        """The EIP-712 message fields."""
        return {"requestId": self.request_id, "device": to_checksum_address(self.device), "watts": self.watts,
                "minPricePerKWh": self.min_price_per_kwh, "extraWatts": self.extra_watts,
                "extraMinPricePerKWh": self.extra_min_price_per_kwh,
                "minAvailabilityPricePerKWh": self.min_availability_price_per_kwh}

    @property
    def total_watts(self) -> int:
        """Both tranches: the most the market may accept from this device."""
        return self.watts + self.extra_watts

    def signed(self, device_key: bytes | str, chain_id: int, registry: str) -> "Commitment":
        """This commitment with the device key's signature attached."""
        signature = eip712.sign(device_key, "Commitment", self.message(), chain_id, registry)
        return replace(self, signature=signature)

    def signer(self, chain_id: int, registry: str) -> str:
        """The address that signed this commitment."""
        return eip712.recover("Commitment", self.message(), self.signature, chain_id, registry)
