"""The JSON form of every device-signed message, one codec per message, used by whoever writes or
reads it: the node's outbox sends it, the oracle's ingest accepts it, and oracles pulling missing
data from each other parse it.

    MeterBatch   {"device", "start", "intervalSeconds", "readings", "sequence", "signature"}
    Commitment   {"requestId", "device", "watts", "minPricePerKWh", "extraWatts", "extraMinPricePerKWh",
                  "signature"}   (the three offer fields default to 0; an extra tranche needs a price
                  no lower than the first's)

Addresses are 0x-hex (any case; mixed case must be EIP-55), signatures 0x-hex, integers JSON
integers (strict: "2", 2.0 and true are refused) within the EIP-712 field's range, and the readings
list is bounded before it is read. Unknown fields are refused. `encode` gives the dict a sender
serialises; `decode` checks one and returns the protocol message.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from protocol.addresses import checksummed, hex_bytes
from protocol.meter import MAX_READING_WH, Commitment, MeterBatch

MAX_READINGS_PER_BATCH = 10_000
MAX_SEQUENCE = 2**63 - 1  # the oracles store sequences as signed 64-bit integers
MAX_SIGNATURE_CHARS = 1_000

UInt32 = Annotated[int, Field(ge=0, le=MAX_READING_WH)]
UInt64 = Annotated[int, Field(ge=0, le=2**64 - 1)]
UInt128 = Annotated[int, Field(ge=0, le=2**128 - 1)]
UInt256 = Annotated[int, Field(ge=0, le=2**256 - 1)]


class _SignedByDevice(BaseModel):
    """Fields every device-signed message has: the device address and its signature (hex)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    device: str = Field(max_length=42, description="the device address, 0x + 40 hex digits")
    signature: str = Field(max_length=MAX_SIGNATURE_CHARS, description="the device key's signature, 0x-hex")

    @field_validator("device")
    @classmethod
    def _checksummed(cls, value: str) -> str:
        return checksummed(value)

    @field_validator("signature")
    @classmethod
    def _hex(cls, value: str) -> str:
        hex_bytes(value)
        return value


class MeterBatchMessage(_SignedByDevice):
    """The JSON form of a signed MeterBatch."""

    start: UInt64
    intervalSeconds: UInt32
    readings: list[UInt32] = Field(max_length=MAX_READINGS_PER_BATCH)
    sequence: Annotated[int, Field(ge=0, le=MAX_SEQUENCE)]

    def to_batch(self) -> MeterBatch:
        """The protocol message."""
        return MeterBatch(self.device, self.start, self.intervalSeconds, tuple(self.readings), self.sequence,
                          hex_bytes(self.signature))


class CommitmentMessage(_SignedByDevice):
    """The JSON form of a signed Commitment."""

    requestId: UInt256
    watts: UInt64
    minPricePerKWh: UInt128 = 0
    extraWatts: UInt64 = 0
    extraMinPricePerKWh: UInt128 = 0
    minAvailabilityPricePerKWh: UInt128 = 0

    @model_validator(mode="after")
    def _tranches_in_order(self) -> "CommitmentMessage":
        if self.extraWatts and self.extraMinPricePerKWh < self.minPricePerKWh:
            raise ValueError(f"the extra tranche's price {self.extraMinPricePerKWh} is below the first tranche's "
                             f"{self.minPricePerKWh} (the less certain tranche cannot be cheaper)")
        if not self.extraWatts and self.extraMinPricePerKWh:
            raise ValueError("extraMinPricePerKWh is set without extraWatts")
        return self

    def to_commitment(self) -> Commitment:
        """The protocol message."""
        return Commitment(self.requestId, self.device, self.watts, self.minPricePerKWh, self.extraWatts,
                          self.extraMinPricePerKWh, self.minAvailabilityPricePerKWh,
                          signature=hex_bytes(self.signature))


def encode_batch(batch: MeterBatch) -> dict[str, Any]:
    """The JSON object a node sends for `batch`."""
    return {"device": batch.device, "start": batch.start, "intervalSeconds": batch.interval_seconds,
            "readings": list(batch.readings), "sequence": batch.sequence, "signature": "0x" + batch.signature.hex()}


def encode_commitment(commitment: Commitment) -> dict[str, Any]:
    """The JSON object a node sends for `commitment`."""
    return {"requestId": commitment.request_id, "device": commitment.device, "watts": commitment.watts,
            "minPricePerKWh": commitment.min_price_per_kwh, "extraWatts": commitment.extra_watts,
            "extraMinPricePerKWh": commitment.extra_min_price_per_kwh,
            "minAvailabilityPricePerKWh": commitment.min_availability_price_per_kwh,
            "signature": "0x" + commitment.signature.hex()}


def decode_batch(data: dict[str, Any] | str | bytes, ignore_extra: bool = False) -> MeterBatch:
    """The MeterBatch in a JSON object (or its text); pydantic.ValidationError says what is wrong.

    `ignore_extra` drops fields a listing adds beside the signed ones (an oracle's stored digest,
    received time), as peer sync reads them."""
    if isinstance(data, (str, bytes)):
        return MeterBatchMessage.model_validate_json(data).to_batch()
    if ignore_extra and isinstance(data, dict):
        data = {name: data[name] for name in MeterBatchMessage.model_fields if name in data}
    return MeterBatchMessage.model_validate(data).to_batch()


def decode_commitment(data: dict[str, Any] | str | bytes) -> Commitment:
    """The Commitment in a JSON object (or its text); pydantic.ValidationError says what is wrong."""
    model = CommitmentMessage.model_validate_json(data) if isinstance(data, (str, bytes)) \
        else CommitmentMessage.model_validate(data)
    return model.to_commitment()
