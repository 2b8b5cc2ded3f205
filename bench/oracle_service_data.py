"""The synthetic fleet of `python -m bench oracle-service`: keys, registration permits, readings, signed bodies.

The rule: everything a node would sign is signed here for real, by the device key, on the digest the
contracts and the oracle compute, and checked against the protocol's own encoders before use. The
fast paths exist only because eth-account's typed-data signing costs milliseconds per message: a
permit digest is the EIP-712 struct hash built from `protocol.eip712.MESSAGE_TYPES` (static fields
only) under `protocol.fast_verify.domain_separator`, and a meter batch or commitment digest is
`protocol.fast_verify.RegistryDomainVerifier`'s; signatures are libsecp256k1's (coincurve, low s),
so the oracle verifies exactly what it would from a node. `check_permit_digest` compares the fast
permit digest with `protocol.eip712.digest` (the run does it once per permit type).

Readings are a deterministic function of (meter, interval): a site meter reads a daily load shape
with noise plus its device's reading; a device (a 3 kW heat pump) reads its own shape and curtails
to a quarter during the request window, so settlement finds a reduction to pay.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from coincurve import PrivateKey
from eth_utils import keccak, to_checksum_address

from protocol import eip712
from protocol.fast_verify import METER_BATCH_TYPEHASH, RegistryDomainVerifier, domain_separator
from protocol.kinds import DeviceKind
from protocol.meter import Commitment
from protocol.units import SECONDS_PER_DAY

SITE_CAPACITY_W = 17_250
DEVICE_CAPACITY_W = 3_000
DEVICE_KIND = int(DeviceKind.HEAT_PUMP)
INTERVAL_SECONDS = 900


@dataclass(frozen=True)
class Meter:
    """One meter of the fleet: its key, checksummed address, and whether it is the site meter."""

    key: bytes
    address: str
    is_site: bool
    site_index: int


@dataclass(frozen=True)
class Fleet:
    """N sites: each one site meter, one dispatchable device at it, and its own owner address."""

    sites: list[Meter]
    devices: list[Meter]
    owners: list[str]

    @property
    def meters(self) -> list[Meter]:
        """Every meter, site meters first (the order of the readings matrices)."""
        return self.sites + self.devices


def _key(seed: bytes, label: str, index: int) -> bytes:
    while True:  # a key outside the curve order is vanishingly rare; step on if it happens
        key = hashlib.sha256(seed + label.encode() + index.to_bytes(8, "big")).digest()
        try:
            PrivateKey(key)
            return key
        except ValueError:
            index += 1 << 40


def _address(key: bytes) -> str:
    return to_checksum_address(keccak(PrivateKey(key).public_key.format(compressed=False)[1:])[-20:])


def make_fleet(sites: int, seed: bytes = b"negawatt-bench") -> Fleet:
    """`sites` sites with deterministic keys (the same fleet for the same seed)."""
    site_meters, devices, owners = [], [], []
    for i in range(sites):
        site_key, device_key = _key(seed, "site", i), _key(seed, "device", i)
        site_meters.append(Meter(site_key, _address(site_key), True, i))
        devices.append(Meter(device_key, _address(device_key), False, i))
        owners.append(to_checksum_address(hashlib.sha256(seed + b"owner" + i.to_bytes(8, "big")).digest()[:20]))
    return Fleet(site_meters, devices, owners)


# ------------------------------------------------------------------------------------------------
# signatures


_signers: dict[bytes, PrivateKey] = {}


def sign_digest(key: bytes, digest: bytes) -> bytes:
    """The 65-byte r||s||v (v = 27/28) signature of a 32-byte digest, as eth-account produces it
    (the key's libsecp256k1 context is built once per key: it costs more than the signature)."""
    signer = _signers.get(key)
    if signer is None:
        signer = _signers[key] = PrivateKey(key)
    signature = signer.sign_recoverable(digest, hasher=None)
    return signature[:64] + bytes([27 + signature[64]])


def _type_hash(primary: str) -> bytes:
    fields = ",".join(f"{f['type']} {f['name']}" for f in eip712.MESSAGE_TYPES[primary])
    return keccak(f"{primary}({fields})".encode())


def _static_word(kind: str, value: object) -> bytes:
    if kind == "address":
        return bytes(12) + bytes.fromhex(str(value)[2:])
    if kind.startswith("uint"):
        return int(value).to_bytes(32, "big")  # type: ignore[call-overload]
    raise ValueError(f"{kind} is not a static field this encoder handles")


class PermitSigner:
    """Fast EIP-712 digests of DevicePermit / DeviceAtSitePermit under one DeviceRegistry's domain."""

    def __init__(self, chain_id: int, registry: str):
        self.chain_id, self.registry = chain_id, registry
        self.separator = domain_separator(chain_id, registry)
        self.type_hashes = {name: _type_hash(name) for name in ("DevicePermit", "DeviceAtSitePermit")}

    def digest(self, primary: str, message: dict) -> bytes:
        """The digest the registry recovers the device key from."""
        words = b"".join(_static_word(f["type"], message[f["name"]]) for f in eip712.MESSAGE_TYPES[primary])
        return keccak(b"\x19\x01" + self.separator + keccak(self.type_hashes[primary] + words))

    def check_permit_digest(self, primary: str, message: dict) -> None:
        """Raise AssertionError unless the fast digest equals protocol.eip712's for `message`."""
        expected = eip712.digest(primary, message, self.chain_id, self.registry)
        if self.digest(primary, message) != expected:
            raise AssertionError(f"the bench's {primary} digest differs from protocol.eip712's")


# ------------------------------------------------------------------------------------------------
# readings


def readings_day(sites: int, day_start: int, event: tuple[int, int] | None = None, seed: int = 0) -> np.ndarray:
    """One day of readings (Wh per 15-minute interval) of every meter, shape [2 * sites, 96]: rows
    0..sites-1 site meters, then the devices. In the `event` window [start, end) devices curtail."""
    intervals = SECONDS_PER_DAY // INTERVAL_SECONDS
    rng = np.random.default_rng([seed, day_start // SECONDS_PER_DAY])
    hours = (np.arange(intervals) * INTERVAL_SECONDS) / 3_600.0
    device_shape = 380 + 220 * np.cos((hours - 7.0) / 24.0 * 2 * np.pi)  # a heat pump: mornings, evenings
    house_shape = 250 + 150 * np.sin((hours - 12.0) / 24.0 * 2 * np.pi) ** 2
    device = device_shape[None, :] * rng.uniform(0.85, 1.15, (sites, 1)) + rng.normal(0, 25, (sites, intervals))
    device = np.clip(device, 0, DEVICE_CAPACITY_W * INTERVAL_SECONDS / 3_600)
    if event is not None:
        starts = day_start + np.arange(intervals) * INTERVAL_SECONDS
        inside = (starts >= event[0]) & (starts + INTERVAL_SECONDS <= event[1])
        device[:, inside] *= 0.25
    house = house_shape[None, :] * rng.uniform(0.8, 1.2, (sites, 1)) + rng.normal(0, 20, (sites, intervals))
    site = np.clip(house, 0, None) + device
    out = np.empty((2 * sites, intervals), dtype=np.int64)
    out[:sites] = np.rint(site)
    out[sites:] = np.rint(device)
    return out


def meter_rows(fleet: Fleet) -> list[Meter]:
    """The meters in the row order of `readings_day`."""
    return fleet.meters


# ------------------------------------------------------------------------------------------------
# request bodies


class BodyMaker:
    """Pre-encoded POST bodies of signed MeterBatches and Commitments (JSON as protocol.messages)."""

    def __init__(self, chain_id: int, registry: str):
        self.verifier = RegistryDomainVerifier(chain_id, registry)
        self.chain_id, self.registry = chain_id, registry

    def batch_digest(self, meter: Meter, start: int, readings: Sequence[int], sequence: int) -> bytes:
        """The EIP-712 digest of the batch: `RegistryDomainVerifier.batch_digest`'s, with the readings
        packed by numpy (`check_batch` compares the two)."""
        packed = np.asarray(readings, dtype=">u4").tobytes()
        struct = keccak(METER_BATCH_TYPEHASH + bytes(12) + bytes.fromhex(meter.address[2:])
                        + start.to_bytes(32, "big") + INTERVAL_SECONDS.to_bytes(32, "big") + keccak(packed)
                        + sequence.to_bytes(32, "big"))
        return keccak(b"\x19\x01" + self.verifier.separator + struct)

    def batch(self, meter: Meter, start: int, readings: Sequence[int], sequence: int) -> bytes:
        """The signed MeterBatch body of `readings` from `start` (15-minute intervals)."""
        signature = sign_digest(meter.key, self.batch_digest(meter, start, readings, sequence))
        return ('{"device":"%s","start":%d,"intervalSeconds":%d,"readings":[%s],"sequence":%d,"signature":"0x%s"}'
                % (meter.address, start, INTERVAL_SECONDS, ",".join(map(str, readings)), sequence,
                   signature.hex())).encode()

    def check_batch(self, meter: Meter, start: int, readings: Sequence[int], sequence: int) -> None:
        """Raise AssertionError unless the fast signature recovers as eth-account recovers it."""
        import json

        from protocol.messages import decode_batch

        batch = decode_batch(json.loads(self.batch(meter, start, readings, sequence)))
        if self.verifier.batch_digest(batch) != self.batch_digest(meter, start, readings, sequence):
            raise AssertionError("the bench's meter batch digest differs from protocol.fast_verify's")
        if batch.signer(self.chain_id, self.registry) != meter.address:
            raise AssertionError("the bench's meter batch signature does not recover to the device")

    def day_bodies(self, meters: list[Meter], day_start: int, readings: np.ndarray, sequence: int) -> Iterator[bytes]:
        """Day-long batches (one per meter, same sequence number) of one readings matrix."""
        rows = readings.tolist()
        for meter, row in zip(meters, rows):
            yield self.batch(meter, day_start, row, sequence)

    def commitment(self, meter: Meter, request_id: int, watts: int) -> bytes:
        """The signed Commitment body of `watts` to `request_id` at any price."""
        commitment = Commitment(request_id, meter.address, watts)
        signature = sign_digest(meter.key, self.verifier.commitment_digest(commitment))
        return ('{"requestId":%d,"device":"%s","watts":%d,"minPricePerKWh":0,"extraWatts":0,'
                '"extraMinPricePerKWh":0,"minAvailabilityPricePerKWh":0,"signature":"0x%s"}'
                % (request_id, meter.address, watts, signature.hex())).encode()
