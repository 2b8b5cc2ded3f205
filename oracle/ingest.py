"""Validation and durable storage of signed meter batches and commitments, independent of HTTP.

`Ingestor.accept_batch` / `accept_commitment` check one signed message against the signature,
the chain (DeviceRegistry devices, FlexMarket requests via `ChainView`) and the oracle's rules,
store it, commit, and only then return the acknowledgement. Bad input raises `Rejected` with a
stable reason code (the REASONS table) and nothing is stored.

Replays are idempotent: the same device and sequence (or request and device) with the same
signed content returns the stored ack, byte for byte. Sequences may skip (the gap is recorded and
reported in the ack) and late batches may fill a gap later.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from eth_utils import to_checksum_address
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import Engine
from sqlmodel import Session

from oracle import db, meter_store
from oracle.group_commit import GroupCommitter
from oracle.chain_view import DeviceInfo, RequestInfo, RequestStatus
from protocol.fast_verify import BatchCheck, BulkBatchVerifier, RegistryDomainVerifier, recover_digest
from protocol.kinds import DeviceKind
from protocol.meter import Commitment, MeterBatch, readings_hash
from protocol.units import BPS, SECONDS_PER_DAY, SECONDS_PER_HOUR

logger = logging.getLogger(__name__)

# code -> (HTTP status, title). Codes are part of the API: nodes and tests match on them.
REASONS: dict[str, tuple[int, str]] = {
    "invalid_payload": (400, "The request body is not a valid payload"),
    "payload_too_large": (413, "The request body is too large"),
    "too_many_batches": (413, "The upload carries more batches than allowed"),
    "bad_signature": (400, "The signature is malformed or not the device's"),
    "unknown_device": (403, "The device is not registered"),
    "device_inactive": (403, "The device is deactivated"),
    "interval_not_allowed": (422, "The interval length is not the oracle's"),
    "misaligned_interval": (422, "The start is not a multiple of the interval"),
    "empty_batch": (422, "The batch has no readings"),
    "too_many_readings": (422, "The batch has more readings than allowed"),
    "future_interval": (422, "The batch ends in the future"),
    "reading_out_of_range": (422, "A reading exceeds what the device's capacity allows"),
    "sequence_conflict": (409, "Another batch with this sequence is stored"),
    "overlapping_interval": (409, "The batch overlaps a stored batch of the device"),
    "unknown_request": (422, "No such request"),
    "request_not_open": (422, "The request is not open"),
    "request_started": (422, "The request has started; commitments are closed"),
    "gate_closed": (422, "The request's gate has closed; commitments are closed"),
    "not_dispatchable": (422, "A site meter meters its site; it cannot commit"),
    "zone_mismatch": (422, "The device is not in the request's zone"),
    "watts_out_of_range": (422, "The committed power is zero or above the device's capacity"),
    "offer_above_ceiling": (422, "The offer's minimum price is above the request's ceiling"),
    "offer_out_of_order": (422, "The extra tranche is priced below the first tranche"),
    "commitment_conflict": (409, "The device committed different watts to this request"),
    "above_tested_capability": (422, "The site's offers to this request exceed its tested capability"),
}


class ChainUnavailable(Exception):
    """The chain view could not answer (RPC down); the message may be accepted later."""


class Rejected(Exception):
    """A message the oracle does not accept: `code` (see REASONS), human `detail`, HTTP `status`."""

    def __init__(self, code: str, detail: str, status: int | None = None):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail
        self.status = status if status is not None else REASONS.get(code, (400, ""))[0]

    @property
    def title(self) -> str:
        """Short human summary of the code."""
        return REASONS.get(self.code, (self.status, "Rejected"))[1]


@dataclass(frozen=True)
class Ack:
    """The oracle's acknowledgement: `json` is the exact stored text; `replay` when it was stored before."""

    json: str
    replay: bool

    @property
    def body(self) -> dict[str, Any]:
        """The ack as a dict."""
        return json.loads(self.json)


class IngestSettings(BaseSettings):
    """The oracle's acceptance rules (environment: NEGAWATT_INGEST_<FIELD>)."""

    model_config = SettingsConfigDict(env_prefix="NEGAWATT_INGEST_", env_file=".env", extra="ignore")

    interval_seconds: int = Field(900, gt=0, le=86_400,
                                  description="the one metering interval accepted (it divides a day: 86,400 s)")
    max_readings: int = Field(96, gt=0, le=10_000, description="most readings in one batch")
    clock_skew_seconds: int = Field(60, ge=0, le=3_600, description="how far a batch may end after now")
    reading_tolerance_bps: int = Field(12_000, ge=BPS, le=10 * BPS,
                                       description="readings may exceed capacity x interval by this factor")
    bulk_max_batches: int = Field(5_000, gt=0, le=100_000,
                                  description="most batches in one bulk upload (POST /v1/meter-batches/bulk)")
    bulk_max_bytes: int = Field(8 * 1024 * 1024, ge=1_024, le=256 * 1024 * 1024,
                                description="largest bulk upload body in bytes (a day-long batch is about 700)")

    @field_validator("interval_seconds")
    @classmethod
    def _divides_a_day(cls, value: int) -> int:
        if SECONDS_PER_DAY % value:
            raise ValueError(f"{value} s does not divide a day (86,400 s): the store keeps readings by day")
        return value


class DeviceSource(Protocol):
    """What the ingest needs from the chain (ChainView implements it)."""

    def device(self, address: str) -> DeviceInfo | None: ...

    def request(self, request_id: int) -> RequestInfo | None: ...


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: the exact text stored and returned for acks."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class Ingestor:
    """Checks and stores signed meter batches and commitments (see the module docstring)."""

    def __init__(self, engine: Engine, chain_view: DeviceSource, verifier: RegistryDomainVerifier,
                 settings: IngestSettings | None = None):
        self.engine = engine
        self.chain_view = chain_view
        self.verifier = verifier
        self.settings = settings or IngestSettings()
        self.committer: GroupCommitter = GroupCommitter(self._write_group)
        self._bulk_verifier: BulkBatchVerifier | None = None
        # The most a site may offer to one request (its capability cap, protocol.capability), or None
        # when nothing is capped (a network without capability tests); the oracle service sets it.
        self.site_cap: Callable[[str], int | None] = lambda site: None

    # -------------------------------------------------------------------------------------------
    # meter batches

    @property
    def max_span_seconds(self) -> int:
        """The longest batch this oracle accepts, in seconds (it bounds the store's range scans)."""
        return self.settings.max_readings * self.settings.interval_seconds

    def accept_batch(self, batch: MeterBatch, now: int) -> Ack:
        """Verify and durably store `batch` received at unix time `now`; raises Rejected.

        Concurrent calls are committed together (oracle.group_commit); each returns once its batch
        is committed. Returns the stored ack of an identical earlier batch (replay) without storing.
        """
        try:
            item = self._checked(batch, now)
        except _Replay as replay:
            return replay.ack
        return self._answer(self.committer.submit((item, now)))

    def accept_batches(self, batches: Sequence[MeterBatch], now: int, group: int = 1_000) -> list[Ack | Rejected]:
        """Verify and store many batches (a peer's page, a history upload): one answer per batch, in
        order, each an Ack (new or replay) or the Rejected that refused it; groups of `group` batches
        are committed in one transaction each, all durable when this returns. A refused batch does
        not stop the others. The signatures are recovered in one pass (protocol.fast_verify's
        BulkBatchVerifier); a batch that fails it is refused by the single-batch check, so its code
        and detail are exactly what `accept_batch` gives."""
        answers: list[Ack | Rejected | None] = [None] * len(batches)
        pending: list[tuple[int, meter_store.BatchToStore]] = []
        checks = self.bulk_verifier.check(batches) if batches else []
        for index, (batch, check) in enumerate(zip(batches, checks)):
            try:
                pending.append((index, self._checked(batch, now, check)))
            except _Replay as replay:
                answers[index] = replay.ack
            except Rejected as refused:
                answers[index] = refused
        for lo in range(0, len(pending), group):
            part = pending[lo:lo + group]
            stored = meter_store.store_batches(self.engine, [item for _i, item in part], now, self.max_span_seconds)
            for (index, _item), answer in zip(part, stored):
                try:
                    answers[index] = self._answer(answer)
                except Rejected as refused:
                    answers[index] = refused
        return answers  # type: ignore[return-value]

    def _write_group(self, items: Sequence[tuple[meter_store.BatchToStore, int]]) -> list:
        """The group committer's writer: batches received at different instants keep their own."""
        answers: list = []
        index = 0
        while index < len(items):  # one transaction per run of the same `now` (almost always one)
            now = items[index][1]
            end = index
            while end < len(items) and items[end][1] == now:
                end += 1
            answers.extend(meter_store.store_batches(self.engine, [item for item, _ in items[index:end]], now,
                                                     self.max_span_seconds))
            index = end
        return answers

    @property
    def bulk_verifier(self) -> BulkBatchVerifier:
        """The verifier `accept_batches` recovers signatures with (one pass, this registry's domain)."""
        if self._bulk_verifier is None:  # built on first use: a stand-in verifier may have no separator
            self._bulk_verifier = BulkBatchVerifier(self.verifier.separator)
        return self._bulk_verifier

    def _checked(self, batch: MeterBatch, now: int, check: BatchCheck | None = None) -> meter_store.BatchToStore:
        """The batch ready to store once its signature, device and shape pass; raises Rejected (or
        answers a replay of an identical stored batch, raised as _Replay). `check` is the batch's
        bulk signature check, when one was made: a passed one spares the recovery here."""
        _check_uint("start", batch.start, 64)
        _check_uint("intervalSeconds", batch.interval_seconds, 32)
        _check_uint("sequence", batch.sequence, 63)  # uint64 when signed; the store holds signed 64-bit
        for index, wh in enumerate(batch.readings):
            _check_uint(f"readings[{index}]", wh, 32)
        if check is not None and check.ok and len(check.digest) == 32:
            device, digest = to_checksum_address(batch.device), check.digest
        else:  # no bulk check, or a failed one: the single-batch path gives the refusal's code and detail
            device, digest = self._signed_by(batch.device, lambda: self.verifier.batch_digest(batch), batch.signature)
        try:
            info = self._check_device(device)
            self._check_batch_shape(batch, now)
            self._check_readings(batch, info)
        except Rejected:
            # A replay of a stored batch is answered with its ack even when the rules changed since
            # (the device was deactivated, the clock moved): the store is looked up only then.
            stored = meter_store.find_batch(self.engine, device, batch.sequence)
            if stored is not None:
                raise _Replay(self._replay(stored.digest, "0x" + digest.hex(), stored.ack, "sequence_conflict",
                                           f"sequence {batch.sequence} of {device} is stored with other content"))
            raise
        return meter_store.BatchToStore(device, batch.sequence, batch.start, batch.interval_seconds,
                                        tuple(batch.readings), bytes(batch.signature), digest)

    def _check_batch_shape(self, batch: MeterBatch, now: int) -> None:
        rules = self.settings
        if batch.interval_seconds != rules.interval_seconds:
            raise Rejected("interval_not_allowed",
                           f"intervalSeconds is {batch.interval_seconds}, this oracle accepts {rules.interval_seconds}")
        if batch.start % batch.interval_seconds != 0:
            raise Rejected("misaligned_interval", f"start {batch.start} is not a multiple of {batch.interval_seconds}")
        if not batch.readings:
            raise Rejected("empty_batch", "a batch carries at least one reading")
        if len(batch.readings) > rules.max_readings:
            raise Rejected("too_many_readings", f"{len(batch.readings)} readings, at most {rules.max_readings}")
        if batch.end > now + rules.clock_skew_seconds:
            raise Rejected("future_interval", f"the batch ends at {batch.end}, now is {now}")

    def _check_readings(self, batch: MeterBatch, info: DeviceInfo) -> None:
        # reading <= capacity_w * interval / 3600 * tolerance_bps / 10000, without division.
        limit_scaled = info.capacity_w * batch.interval_seconds * self.settings.reading_tolerance_bps
        for index, wh in enumerate(batch.readings):
            if wh * SECONDS_PER_HOUR * BPS > limit_scaled:
                raise Rejected("reading_out_of_range",
                               f"reading {index} is {wh} Wh; {info.capacity_w} W over {batch.interval_seconds} s "
                               f"allows {limit_scaled // (SECONDS_PER_HOUR * BPS)} Wh")

    @staticmethod
    def _answer(answer: meter_store.Stored | meter_store.Refused) -> Ack:
        if isinstance(answer, meter_store.Refused):
            raise Rejected(answer.code, answer.detail)
        return Ack(answer.ack, replay=answer.replay)

    # -------------------------------------------------------------------------------------------
    # commitments

    def accept_commitment(self, commitment: Commitment, now: int) -> Ack:
        """Verify and durably store `commitment` received at unix time `now`; raises Rejected.

        Returns the stored ack of an identical earlier commitment (replay) without storing anything.
        """
        _check_uint("requestId", commitment.request_id, 256)
        _check_uint("watts", commitment.watts, 64)
        _check_uint("extraWatts", commitment.extra_watts, 64)
        _check_uint("minPricePerKWh", commitment.min_price_per_kwh, 128)
        _check_uint("extraMinPricePerKWh", commitment.extra_min_price_per_kwh, 128)
        _check_uint("minAvailabilityPricePerKWh", commitment.min_availability_price_per_kwh, 128)
        device, digest = self._signed_by(commitment.device, lambda: self.verifier.commitment_digest(commitment),
                                         commitment.signature)
        digest_hex = "0x" + digest.hex()
        request_id = commitment.request_id
        if not 0 < request_id <= db.MAX_DB_INT:  # ids count up from 1; larger ones cannot exist
            raise Rejected("unknown_request", f"no request {request_id}")
        with Session(self.engine) as session:
            stored = db.find_commitment(session, request_id, device)
            if stored is not None:
                return self._replay(stored.digest, digest_hex, stored.ack, "commitment_conflict",
                                    f"{device} committed {stored.watts} W to request {request_id}")
        info = self._check_device(device)
        request = self._lookup("request", request_id)
        if request is None:
            raise Rejected("unknown_request", f"no request {request_id}")
        if request.status is not RequestStatus.OPEN:
            raise Rejected("request_not_open", f"request {request_id} is {request.status.value}")
        if now >= request.start:
            raise Rejected("request_started", f"request {request_id} started at {request.start}, now is {now}")
        if now >= request.gate_time:
            raise Rejected("gate_closed", f"request {request_id}'s gate closed at {request.gate_time}, now is {now}")
        if info.kind == DeviceKind.SITE_METER:
            raise Rejected("not_dispatchable", f"{device} is a site meter")
        if info.zone != request.zone:
            raise Rejected("zone_mismatch", f"device zone {info.zone}, request zone {request.zone}")
        if not 0 < commitment.watts or commitment.total_watts > info.capacity_w:
            raise Rejected("watts_out_of_range", f"{commitment.watts} W + {commitment.extra_watts} W extra offered; "
                                                 f"the device's capacity is {info.capacity_w} W")
        if commitment.min_price_per_kwh > request.price_per_kwh:
            raise Rejected("offer_above_ceiling", f"minimum price {commitment.min_price_per_kwh} per kWh is above the "
                                                  f"request's ceiling {request.price_per_kwh}")
        if commitment.min_availability_price_per_kwh > request.availability_ceiling:
            raise Rejected("offer_above_ceiling",
                           f"minimum availability price {commitment.min_availability_price_per_kwh} per kW per hour is "
                           f"above the request's availability ceiling {request.availability_ceiling}"
                           + (" (it pays no availability)" if request.availability_ceiling == 0 else ""))
        if commitment.extra_watts and commitment.extra_min_price_per_kwh < commitment.min_price_per_kwh:
            raise Rejected("offer_out_of_order", "the extra tranche's price is below the first tranche's")

        site = getattr(info, "site", None)
        cap = self.site_cap(site) if site else None  # read before the write transaction: it reads reports
        with db.write_transaction(self.engine, f"request:{request_id}") as session:
            stored = db.find_commitment(session, request_id, device)
            if stored is not None:
                return self._replay(stored.digest, digest_hex, stored.ack, "commitment_conflict",
                                    f"{device} committed {stored.watts} W to request {request_id}")
            if cap is not None:
                self._check_capability(session, site, cap, device, request_id, commitment.total_watts)
            ack = canonical_json({
                "status": "accepted", "kind": "commitment", "device": device, "request_id": request_id,
                "watts": commitment.watts, "digest": digest_hex, "received_at": now, "gap": None,
            })
            session.add(db.CommitmentRecord(
                request_id=request_id, device=device, watts=commitment.watts, digest=digest_hex,
                signature="0x" + commitment.signature.hex(), ack=ack, received_at=now,
                min_price=str(commitment.min_price_per_kwh), extra_watts=commitment.extra_watts,
                extra_min_price=str(commitment.extra_min_price_per_kwh),
                min_availability_price=str(commitment.min_availability_price_per_kwh)))
        logger.debug("accepted commitment %s -> request %d (%d W)", device, request_id, commitment.watts)
        return Ack(ack, replay=False)

    def _check_capability(self, session: Any, site: str, cap: int, device: str, request_id: int, watts: int) -> None:
        """Refuse an offer that takes its site's offers to this request past `cap`, the site's tested
        capability (checked in the request's write transaction, so two devices of one site cannot both
        pass on the same room). The clearing cuts offers to the same cap (protocol.clearing)."""
        devices_at = getattr(self.chain_view, "devices_at", lambda _site: [])
        others = 0
        for other in devices_at(site):
            if other.lower() == device.lower():
                continue
            found = db.find_commitment(session, request_id, other)
            if found is not None:
                others += found.watts + found.extra_watts
        if others + watts > cap:
            raise Rejected("above_tested_capability",
                           f"site {site} may offer at most {cap} W to a request (its tested capability, or the "
                           f"probationary cap before it passed a test); its devices already offer {others} W and this "
                           f"offer adds {watts} W")

    # -------------------------------------------------------------------------------------------
    # shared checks

    @staticmethod
    def _signed_by(claimed: str, digest_of: Callable[[], bytes], signature: bytes) -> tuple[str, bytes]:
        """(checksummed device, EIP-712 digest) when `signature` is the claimed device's."""
        try:
            device = to_checksum_address(claimed)
            digest = digest_of()
        except (ValueError, OverflowError) as error:
            raise Rejected("invalid_payload", str(error)) from None
        try:
            signer = recover_digest(digest, bytes(signature))
        except ValueError as error:
            raise Rejected("bad_signature", str(error)) from None
        if signer != device:
            raise Rejected("bad_signature", f"signed by {signer}, not by {device}")
        return device, digest

    def _lookup(self, what: str, key: Any) -> Any:
        try:
            return getattr(self.chain_view, what)(key)
        except db.DatabaseBusy:  # the sync could not store its cursor: the database's answer, not the chain's
            raise
        except Exception as error:  # web3 / transport errors of a sync triggered by the lookup
            logger.warning("chain view could not look up %s %s: %s", what, key, error)
            raise ChainUnavailable(f"the chain is not reachable to look up {what} {key}") from error

    def _check_device(self, device: str) -> DeviceInfo:
        info = self._lookup("device", device)
        if info is None:
            raise Rejected("unknown_device", f"{device} is not registered")
        if not info.active:
            raise Rejected("device_inactive", f"{device} is deactivated")
        return info

    @staticmethod
    def _replay(stored_digest: str, digest_hex: str, stored_ack: str, conflict: str, detail: str) -> Ack:
        if stored_digest != digest_hex:
            raise Rejected(conflict, detail)
        return Ack(stored_ack, replay=True)


class _Replay(Exception):
    """An identical stored batch was found while checking: its ack is the answer."""

    def __init__(self, ack: Ack):
        super().__init__("replay")
        self.ack = ack


def _check_uint(name: str, value: int, bits: int) -> None:
    """Reject values the EIP-712 field type (or the store) cannot hold."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**bits:
        raise Rejected("invalid_payload", f"{name} must be an integer in [0, 2**{bits})")
