"""The oracle's meter readings: every signed batch as received, and each meter's readings by day.

The rule: one accepted batch is written, in one transaction, to two tables.
- `signed_batches` keeps the batch exactly as signed (meter, sequence, start, interval, readings
  packed as little-endian uint32, the 65-byte signature, the EIP-712 digest) with when it was
  received and the sequence gap its ack reported. It proves every number (anyone can re-verify
  it), and it rebuilds the ack byte for byte, so the ack itself is not stored.
- `meter_days` holds one row per meter and UTC day: the day's readings as a packed uint32 array
  (slot k = the k-th interval of the day) and a bitmap of the slots present. This is what the
  settlement reads: a request's readings load with one range query per chunk of meters, straight
  into a numpy array (`oracle.readings.MeterReadings`), with no Python object per reading.
A slot is written once: a batch that overlaps a present slot of its meter is refused
(`overlapping_interval`), so the day arrays always equal the readings of the stored batches.
`meters` maps each address to a small integer id, so rows do not repeat 42-character addresses.

Writes come in groups (`store_batches`): many batches, one transaction, one fsync, one answer per
batch; a batch refused by a rule does not stop the others, and an error of the database rolls the
whole group back (nothing of it is acknowledged). `oracle.group_commit` gathers concurrent
requests into such groups. A day's interval must divide 86,400 s (IngestSettings checks it).

`prune(engine, before)` deletes day rows and signed batches older than the history any baseline
reads, in one transaction; the oracle service's daily upkeep (oracle.meter_retention: the retention
rule, bounded transactions, PostgreSQL day partitions) is what runs in production.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from eth_utils import keccak, to_checksum_address
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from oracle import db
from oracle.readings import MeterReadings
from protocol.meter import MeterBatch, readings_hash
from protocol.units import SECONDS_PER_DAY

logger = logging.getLogger(__name__)

LOCK_KEY = "meters"  # every batch write serializes on it (PostgreSQL: one advisory lock)
ID_CHUNK = 5_000  # meters per range query when loading
WIDE_RANGE_DAYS = 120  # a load over more days first asks which days are stored




# ------------------------------------------------------------------------------------------------
# packing


def pack(readings: Sequence[int]) -> bytes:
    """Readings as little-endian uint32 bytes (each in [0, 2**32))."""
    return np.asarray(readings, dtype="<u4").tobytes()


def unpack(blob: bytes) -> tuple[int, ...]:
    """The readings packed by `pack`."""
    return tuple(np.frombuffer(blob, dtype="<u4").tolist())


def canonical_json(value: object) -> str:
    """Compact JSON with sorted keys: the exact text of an ack."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# ------------------------------------------------------------------------------------------------
# the read form


@dataclass(frozen=True)
class StoredBatch:
    """A stored batch as signed, with what the oracle recorded (`id` orders batches as stored)."""

    id: int
    device: str
    sequence: int
    start: int
    interval_seconds: int
    readings: tuple[int, ...]
    signature_bytes: bytes
    digest_bytes: bytes
    received_at: int
    gap_expected: int | None

    @property
    def end(self) -> int:
        """The end of the batch's last interval."""
        return self.start + len(self.readings) * self.interval_seconds

    @property
    def signature(self) -> str:
        """The signature, 0x hex."""
        return "0x" + self.signature_bytes.hex()

    @property
    def digest(self) -> str:
        """The EIP-712 digest the device signed, 0x hex."""
        return "0x" + self.digest_bytes.hex()

    @property
    def readings_hash(self) -> str:
        """keccak of the readings as the message encodes them, 0x hex."""
        return "0x" + readings_hash(self.readings).hex()

    def readings_list(self) -> list[int]:
        """The readings (Wh per interval, in order)."""
        return list(self.readings)

    def message(self) -> MeterBatch:
        """The signed protocol message (re-verifiable)."""
        return MeterBatch(self.device, self.start, self.interval_seconds, self.readings, self.sequence,
                          self.signature_bytes)

    @property
    def ack(self) -> str:
        """The acknowledgement the oracle sent for it, byte for byte."""
        gap = None if self.gap_expected is None else {"expected": self.gap_expected, "received": self.sequence}
        return batch_ack(self.device, self.sequence, self.start, self.end, self.interval_seconds, self.digest,
                         self.received_at, gap)


def batch_ack(device: str, sequence: int, start: int, end: int, interval_seconds: int, digest_hex: str,
              received_at: int, gap: dict[str, int] | None) -> str:
    """The ack of an accepted batch (canonical JSON)."""
    return canonical_json({
        "status": "accepted", "kind": "meter_batch", "device": device, "sequence": sequence, "start": start,
        "end": end, "interval_seconds": interval_seconds, "digest": digest_hex, "received_at": received_at,
        "gap": gap,
    })


_BATCH_COLUMNS = ("b.id, m.address, b.sequence, b.start, b.interval_seconds, b.readings, b.signature, b.digest, "
                  "b.received_at, b.gap_expected")


def _stored(row: Sequence) -> StoredBatch:
    return StoredBatch(int(row[0]), row[1], int(row[2]), int(row[3]), int(row[4]), unpack(bytes(row[5])),
                       bytes(row[6]), bytes(row[7]), int(row[8]), None if row[9] is None else int(row[9]))


# ------------------------------------------------------------------------------------------------
# meter ids


_ids: dict[int, dict[str, int]] = {}  # id(engine) -> {address: meter id}, only ids that are committed
_ids_guard = threading.Lock()


def _known_ids(engine: Engine) -> dict[str, int]:
    with _ids_guard:
        return _ids.setdefault(id(engine), {})


def forget_ids(engine: Engine) -> None:
    """Drop the cached meter ids of `engine` (after its tables were emptied, e.g. in tests)."""
    with _ids_guard:
        _ids.pop(id(engine), None)


def _warm_ids(connection: Connection, engine: Engine) -> None:
    """Cache every committed meter id of `engine` (one scan of `meters`; a large load asks for most)."""
    known = _known_ids(engine)
    rows = connection.exec_driver_sql("SELECT id, address FROM meters").fetchall()
    with _ids_guard:
        known.update((address, int(meter_id)) for meter_id, address in rows)


def meter_ids(connection: Connection, engine: Engine, addresses: Iterable[str]) -> dict[str, int]:
    """The ids of the meters among `addresses` that have one (checksummed addresses)."""
    known = _known_ids(engine)
    found = {a: known[a] for a in addresses if a in known}
    missing = sorted(set(addresses) - set(found))
    for lo in range(0, len(missing), ID_CHUNK):
        chunk = missing[lo:lo + ID_CHUNK]
        params = {f"a{i}": a for i, a in enumerate(chunk)}
        placeholders = ", ".join(f":a{i}" for i in range(len(chunk)))
        for meter_id, address in connection.execute(
                text(f"SELECT id, address FROM meters WHERE address IN ({placeholders})"), params):
            found[address] = int(meter_id)
    with _ids_guard:
        known.update(found)
    return found


# ------------------------------------------------------------------------------------------------
# writes


@dataclass(frozen=True)
class BatchToStore:
    """A batch whose signature and shape the ingest checked, ready to store."""

    device: str  # checksummed
    sequence: int
    start: int
    interval_seconds: int
    readings: tuple[int, ...]
    signature: bytes
    digest: bytes

    @property
    def end(self) -> int:
        """The end of the batch's last interval."""
        return self.start + len(self.readings) * self.interval_seconds


@dataclass(frozen=True)
class Stored:
    """A batch stored now (`replay` False) or identical to one stored before (`replay` True)."""

    ack: str
    replay: bool


@dataclass(frozen=True)
class Refused:
    """A batch a store rule refused (`code`: sequence_conflict or overlapping_interval)."""

    code: str
    detail: str


_SELECT_BY_SEQUENCE = text(f"SELECT {_BATCH_COLUMNS} FROM signed_batches b JOIN meters m ON m.id = b.meter "
                           "WHERE b.meter = :meter AND b.sequence = :sequence")
_MAX_SEQUENCE = text("SELECT MAX(sequence) FROM signed_batches WHERE meter = :meter")
_SELECT_DAY = text("SELECT interval_seconds, readings, present FROM meter_days WHERE meter = :meter AND day = :day")
_INSERT_BATCH = text("INSERT INTO signed_batches (meter, sequence, start, interval_seconds, readings, signature, "
                     "digest, received_at, gap_expected) VALUES (:meter, :sequence, :start, :interval_seconds, "
                     ":readings, :signature, :digest, :received_at, :gap_expected)")
_UPSERT_DAY = text("INSERT INTO meter_days (meter, day, interval_seconds, readings, present) VALUES "
                   "(:meter, :day, :interval_seconds, :readings, :present) ON CONFLICT (meter, day) DO UPDATE SET "
                   "readings = excluded.readings, present = excluded.present")
_INSERT_GAP = text("INSERT INTO sequence_gaps (device, expected, received, detected_at) "
                   "VALUES (:device, :expected, :received, :detected_at)")
_OPEN_GAP = text("SELECT id, expected, received FROM sequence_gaps WHERE device = :device AND filled_at IS NULL "
                 "AND expected <= :sequence AND received > :sequence")
_COUNT_RANGE = text("SELECT COUNT(*) FROM signed_batches WHERE meter = :meter AND sequence >= :low "
                    "AND sequence < :high")
_FILL_GAP = text("UPDATE sequence_gaps SET filled_at = :now WHERE id = :id")
_OVERLAPPING = text("SELECT sequence, start, interval_seconds, readings FROM signed_batches WHERE meter = :meter "
                    "AND start < :end AND start >= :earliest ORDER BY start")


class _Day:
    """A day row being written: its readings and presence as arrays (slot k = k-th interval)."""

    def __init__(self, interval: int, readings: bytes | None = None, present: bytes | None = None):
        slots = SECONDS_PER_DAY // interval
        self.interval = interval
        if readings is None:
            self.readings = np.zeros(slots, dtype="<u4")
            self.present = np.zeros(slots, dtype=bool)
        else:
            self.readings = np.frombuffer(readings, dtype="<u4").copy()
            self.present = np.unpackbits(np.frombuffer(present, dtype=np.uint8), bitorder="little")[:slots].astype(bool)

    def put(self, lo: int, hi: int, values: Sequence[int]) -> None:
        """Write `values` into slots [lo, hi) and mark them present."""
        self.readings[lo:hi] = values
        self.present[lo:hi] = True

    def row(self, meter: int, day: int) -> dict:
        return {"meter": meter, "day": day, "interval_seconds": self.interval, "readings": self.readings.tobytes(),
                "present": np.packbits(self.present, bitorder="little").tobytes()}


def _spans(start: int, interval: int, count: int) -> list[tuple[int, int, int, int]]:
    """(day, first slot, last slot exclusive, offset in the batch) of each day a batch covers."""
    spans = []
    index = 0
    slots = SECONDS_PER_DAY // interval
    while index < count:
        t = start + index * interval
        day, slot = divmod(t, SECONDS_PER_DAY)
        slot //= interval
        take = min(count - index, slots - slot)
        spans.append((day, slot, slot + take, index))
        index += take
    return spans


def store_batches(engine: Engine, items: Sequence[BatchToStore], now: int, max_span_seconds: int) -> list[Stored | Refused]:
    """Store `items` in one write transaction: one answer each, in order (see the module docstring).

    `max_span_seconds` is the longest batch the ingest accepts (it bounds the overlap query)."""
    answers: list[Stored | Refused] = []
    new_ids: dict[str, int] = {}
    with db.write_transaction(engine, LOCK_KEY) as session:
        connection = session.connection()
        ids = meter_ids(connection, engine, {item.device for item in items})
        days: dict[tuple[int, int], _Day] = {}
        dirty: set[tuple[int, int]] = set()
        last: dict[int, int | None] = {}
        for item in items:
            meter = ids.get(item.device)
            if meter is None:
                meter = connection.execute(text("INSERT INTO meters (address) VALUES (:address) RETURNING id"),
                                           {"address": item.device}).scalar_one()
                ids[item.device] = new_ids[item.device] = meter
                last[meter] = None
            answers.append(_store_one(connection, item, meter, now, days, dirty, last, max_span_seconds))
        if dirty:
            connection.execute(_UPSERT_DAY, [days[key].row(*key) for key in sorted(dirty)])
    known = _known_ids(engine)
    with _ids_guard:
        known.update(new_ids)
    return answers


def _store_one(connection: Connection, item: BatchToStore, meter: int, now: int, days: dict, dirty: set,
               last: dict, max_span_seconds: int) -> Stored | Refused:
    if meter not in last:
        last[meter] = connection.execute(_MAX_SEQUENCE, {"meter": meter}).scalar()
    highest = last[meter]
    if highest is not None and item.sequence <= highest:
        row = connection.execute(_SELECT_BY_SEQUENCE, {"meter": meter, "sequence": item.sequence}).first()
        if row is not None:
            stored = _stored(row)
            if stored.digest_bytes != item.digest:
                return Refused("sequence_conflict",
                               f"sequence {item.sequence} of {item.device} is stored with other content")
            return Stored(stored.ack, replay=True)
    spans = _spans(item.start, item.interval_seconds, len(item.readings))
    for day, lo, hi, _offset in spans:
        state = days.get((meter, day))
        if state is None:
            row = connection.execute(_SELECT_DAY, {"meter": meter, "day": day}).first()
            state = _Day(item.interval_seconds) if row is None else _Day(int(row[0]), bytes(row[1]), bytes(row[2]))
            days[(meter, day)] = state
        if state.interval != item.interval_seconds:
            return Refused("overlapping_interval", f"day {day} of {item.device} is stored at {state.interval} s intervals")
        if state.present[lo:hi].any():
            return Refused("overlapping_interval", _overlap_detail(connection, item, meter, max_span_seconds))
    for day, lo, hi, offset in spans:
        days[(meter, day)].put(lo, hi, item.readings[offset:offset + hi - lo])
        dirty.add((meter, day))
    expected = 0 if highest is None else highest + 1
    gap = None
    if item.sequence > expected:
        gap = {"expected": expected, "received": item.sequence}
        connection.execute(_INSERT_GAP, {"device": item.device, "expected": expected, "received": item.sequence,
                                         "detected_at": now})
        logger.warning("sequence gap for %s: expected %d, received %d", item.device, expected, item.sequence)
    connection.execute(_INSERT_BATCH, {
        "meter": meter, "sequence": item.sequence, "start": item.start, "interval_seconds": item.interval_seconds,
        "readings": pack(item.readings), "signature": item.signature, "digest": item.digest, "received_at": now,
        "gap_expected": None if gap is None else expected})
    if highest is not None and item.sequence < highest:  # a late batch may fill a recorded gap
        _close_filled_gap(connection, item.device, meter, item.sequence, now)
    last[meter] = item.sequence if highest is None else max(highest, item.sequence)
    return Stored(batch_ack(item.device, item.sequence, item.start, item.end, item.interval_seconds,
                            "0x" + item.digest.hex(), now, gap), replay=False)


def _overlap_detail(connection: Connection, item: BatchToStore, meter: int, max_span_seconds: int) -> str:
    for sequence, start, interval, readings in connection.execute(
            _OVERLAPPING, {"meter": meter, "end": item.end, "earliest": item.start - max_span_seconds}):
        end = int(start) + len(readings) // 4 * int(interval)
        if end > item.start:
            return f"[{item.start}, {item.end}) overlaps stored batch {sequence} [{start}, {end})"
    return f"[{item.start}, {item.end}) overlaps a stored batch of the device"


def _close_filled_gap(connection: Connection, device: str, meter: int, sequence: int, now: int) -> None:
    gap = connection.execute(_OPEN_GAP, {"device": device, "sequence": sequence}).first()
    if gap is None:
        return
    gap_id, expected, received = gap
    stored = connection.execute(_COUNT_RANGE, {"meter": meter, "low": expected, "high": received}).scalar()
    if stored == received - expected:
        connection.execute(_FILL_GAP, {"now": now, "id": gap_id})
        logger.info("sequence gap for %s [%d, %d) filled", device, expected, received)


# ------------------------------------------------------------------------------------------------
# reads


def find_batch(engine: Engine, device: str, sequence: int) -> StoredBatch | None:
    """The stored batch of `device` (checksummed) with `sequence`, if any."""
    with Session(engine) as session:
        connection = session.connection()
        meter = meter_ids(connection, engine, [device]).get(device)
        if meter is None:
            return None
        row = connection.execute(_SELECT_BY_SEQUENCE, {"meter": meter, "sequence": sequence}).first()
        return None if row is None else _stored(row)


_END = "(b.start + (length(b.readings) / 4) * b.interval_seconds)"  # a batch's end, in SQL


def batches_of_device(engine: Engine, device: str, from_ts: int = 0, to_ts: int = db.MAX_DB_INT,
                      limit: int = 1000, max_span_seconds: int = SECONDS_PER_DAY) -> list[StoredBatch]:
    """Stored batches of `device` overlapping [from_ts, to_ts), oldest first, at most `limit`
    (`max_span_seconds`: the longest batch the ingest accepts, which bounds the scan)."""
    with Session(engine) as session:
        connection = session.connection()
        meter = meter_ids(connection, engine, [device]).get(device)
        if meter is None:
            return []
        rows = connection.execute(text(
            f"SELECT {_BATCH_COLUMNS} FROM signed_batches b JOIN meters m ON m.id = b.meter WHERE b.meter = :meter "
            f"AND b.start < :to_ts AND b.start >= :earliest AND {_END} > :from_ts ORDER BY b.start LIMIT :limit"),
            {"meter": meter, "to_ts": to_ts, "from_ts": from_ts, "earliest": max(0, from_ts - max_span_seconds),
             "limit": limit})
        return [_stored(row) for row in rows]


def batches_in_range(engine: Engine, from_ts: int, to_ts: int, after: int = 0, limit: int = 1000,
                     max_span_seconds: int = SECONDS_PER_DAY) -> list[StoredBatch]:
    """Stored batches of every device overlapping [from_ts, to_ts), in the order they were stored
    (by `id`), after the id `after`; at most `limit`. Peers page through a time range with it: the
    next page starts after the last id of this one."""
    with Session(engine) as session:
        rows = session.connection().execute(text(
            f"SELECT {_BATCH_COLUMNS} FROM signed_batches b JOIN meters m ON m.id = b.meter WHERE b.id > :after "
            f"AND b.start < :to_ts AND b.start >= :earliest AND {_END} > :from_ts ORDER BY b.id LIMIT :limit"),
            {"after": after, "to_ts": to_ts, "from_ts": from_ts, "earliest": max(0, from_ts - max_span_seconds),
             "limit": limit})
        return [_stored(row) for row in rows]


def readings_count(engine: Engine) -> int:
    """How many readings are stored in all (the day arrays' present slots)."""
    with Session(engine) as session:
        total = 0
        for (present,) in session.connection().execute(text("SELECT present FROM meter_days")):
            total += int(np.unpackbits(np.frombuffer(bytes(present), dtype=np.uint8)).sum())
        return total


def readings_matrix(engine: Engine, meters: Iterable[str], from_ts: int, to_ts: int,
                    interval_seconds: int | None = None, dtype: type = np.int32) -> MeterReadings:
    """Every stored reading of `meters` whose interval starts in [from_ts, to_ts), as one array.

    The grid starts at from_ts rounded down to the interval (an interval of the oracle's: given, or
    the one of the stored rows; rows of another interval are left out) and ends at to_ts rounded up;
    every requested meter has a row (all -1 without readings). One range query per chunk of meters,
    read with the driver's cursor and decoded in bulk (`_fill`): no Python work per reading, and per
    row only what the driver does to hand the row over."""
    requested = list(meters)
    with Session(engine) as session:
        connection = session.connection()
        known = _known_ids(engine)
        if len(requested) >= ID_CHUNK and any(m not in known for m in requested):
            _warm_ids(connection, engine)
        wanted = sorted(set(checksummed(requested, _known_ids(engine))))
        if interval_seconds is None:
            found = connection.execute(text("SELECT interval_seconds FROM meter_days LIMIT 1")).scalar()
            interval_seconds = int(found) if found is not None else 900
        interval = interval_seconds
        slots = SECONDS_PER_DAY // interval
        grid_start = from_ts - from_ts % interval if from_ts < to_ts else 0
        grid_end = to_ts + (-to_ts) % interval if from_ts < to_ts else 0
        if grid_end - grid_start > WIDE_RANGE_DAYS * SECONDS_PER_DAY:  # trim a wide range to the days stored
            low, high = connection.execute(text("SELECT MIN(day), MAX(day) FROM meter_days WHERE day >= :d0 AND "
                                                "day <= :d1"), {"d0": grid_start // SECONDS_PER_DAY,
                                                                "d1": (grid_end - 1) // SECONDS_PER_DAY}).one()
            if low is None:
                grid_start = grid_end = 0
            else:
                grid_start = max(grid_start, int(low) * SECONDS_PER_DAY)
                grid_end = min(grid_end, (int(high) + 1) * SECONDS_PER_DAY)
        n_cols = max(0, (grid_end - grid_start) // interval)
        loads = np.full((len(wanted), n_cols), -1, dtype=dtype)
        result = MeterReadings(wanted, grid_start, interval, loads)
        if not wanted or n_cols == 0:
            return result
        ids = meter_ids(connection, engine, wanted)
        id_list = sorted(ids[m] for m in wanted if m in ids)
        if not id_list:
            return result
        row_of = np.full(id_list[-1] + 1, -1, dtype=np.int64)  # meter id -> row of `loads`
        for m in wanted:
            if m in ids:
                row_of[ids[m]] = result.index[m]
        first_day, last_day = grid_start // SECONDS_PER_DAY, (grid_end - 1) // SECONDS_PER_DAY
        cursor = connection.connection.dbapi_connection.cursor()  # the session's own transaction
        try:
            for lo in range(0, len(id_list), ID_CHUNK):
                chunk = id_list[lo:lo + ID_CHUNK]
                # every value inlined is an int of ours (ids from the meters table, days, the interval)
                cursor.execute(f"SELECT meter, day, readings, present FROM meter_days WHERE meter IN "
                               f"({', '.join(str(int(i)) for i in chunk)}) AND day >= {int(first_day)} "
                               f"AND day <= {int(last_day)} AND interval_seconds = {int(interval)}")
                rows = cursor.fetchall()
                if rows:
                    _fill(loads, rows, row_of, grid_start, interval, slots)
        finally:
            cursor.close()
    return result


def checksummed(addresses: Iterable[str], known: Mapping[str, int] | None = None) -> list[str]:
    """`addresses` checksummed (EIP-55), in order; a ValueError names one that is not an address.

    The same answer as eth_utils.to_checksum_address on each, in bulk: an address whose lower case
    is among `known` (checksummed keys, e.g. the meter ids) takes that spelling with one dict look-up;
    the others take one keccak call each and their letters are raised in one numpy pass (keccak is
    ~20 us a call, the library's per-character loop another ~40 us)."""
    items = list(addresses)
    by_lower = {a.lower(): a for a in known} if known else {}
    out: list[str | None] = [None] * len(items)
    hashed: list[int] = []
    for i, a in enumerate(items):
        if isinstance(a, str) and _HEX_ADDRESS.fullmatch(a):
            out[i] = by_lower.get(a.lower())
            if out[i] is None:
                hashed.append(i)
        else:  # anything but 0x + 40 hex digits: the library's rules and its error
            out[i] = to_checksum_address(a)
    if hashed:
        lower = [items[i][2:].lower() for i in hashed]
        digests = "".join(keccak(text=h).hex()[:40] for h in lower)
        chars = np.frombuffer("".join(lower).encode("ascii"), dtype=np.uint8).copy()
        nibbles = np.frombuffer(digests.encode("ascii"), dtype=np.uint8)
        chars[(nibbles >= ord("8")) & (chars >= ord("a"))] -= 32  # a letter whose hash digit is 8..f
        spelled = chars.tobytes().decode("ascii")
        for k, i in enumerate(hashed):
            out[i] = "0x" + spelled[40 * k:40 * (k + 1)]
    return out  # type: ignore[return-value]


_HEX_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def _fill(loads: np.ndarray, rows: Sequence, row_of: np.ndarray, grid_start: int, interval: int,
          slots: int) -> None:
    """Write day rows (meter id, day, packed readings, presence bitmap) into `loads`: the columns
    are transposed by the C-level zip, every packed array decoded by one frombuffer over their
    join, the bitmaps by one unpackbits, and the slots inside `loads` written by one assignment
    per day (columns outside it are dropped; an absent slot writes the -1 already there)."""
    n = len(rows)
    meter_col, day_col, packed, bitmaps = zip(*rows)
    width = (slots + 7) // 8
    blob = b"".join(packed)
    bits = b"".join(bitmaps)
    if len(blob) != n * slots * 4 or len(bits) != n * width:
        bad = next(i for i in range(n) if len(packed[i]) != slots * 4 or len(bitmaps[i]) != width)
        raise ValueError(f"meter_days row of meter {meter_col[bad]}, day {day_col[bad]}: {len(packed[bad])} bytes "
                         f"of readings and {len(bitmaps[bad])} of bitmap, not {slots * 4} and {width} for "
                         f"{slots} slots")
    target = row_of[np.asarray(meter_col, dtype=np.int64)]
    first = np.asarray(day_col, dtype=np.int64) * slots - grid_start // interval  # column of each row's slot 0
    values = np.frombuffer(blob, dtype="<u4").reshape(n, slots)
    present = np.unpackbits(np.frombuffer(bits, dtype=np.uint8).reshape(n, width), axis=1,
                            bitorder="little")[:, :slots].astype(bool)
    day = values.astype(loads.dtype)  # a row's slots as `loads` holds them; no other row shares them
    day[~present] = -1
    n_cols = loads.shape[1]
    for column in np.unique(first).tolist():  # one assignment per day of the range, over all its rows
        rows_ = np.flatnonzero(first == column)
        lo, hi = max(0, column), min(n_cols, column + slots)
        if hi > lo:
            loads[target[rows_], lo:hi] = day[rows_, lo - column:hi - column]


def readings_in_range(engine: Engine, devices: Iterable[str], from_ts: int, to_ts: int,
                      interval_seconds: int | None = None) -> MeterReadings:
    """Every stored reading of `devices` whose interval starts in [from_ts, to_ts), read as
    {checksummed device: {interval start: Wh}} (a MeterReadings: the array and that mapping)."""
    return readings_matrix(engine, devices, from_ts, to_ts, interval_seconds)


def prune(engine: Engine, before: int) -> int:
    """Delete the day rows of days ending at or before `before` and the signed batches ending by
    then (the history no baseline reads any more); returns how many batches went."""
    day = before // SECONDS_PER_DAY
    with db.write_transaction(engine, LOCK_KEY) as session:
        connection = session.connection()
        connection.execute(text("DELETE FROM meter_days WHERE day < :day"), {"day": day})
        gone = connection.execute(text(
            "DELETE FROM signed_batches WHERE start + (length(readings) / 4) * interval_seconds <= :before"),
            {"before": day * SECONDS_PER_DAY}).rowcount
    return int(gone or 0)


def migrate_legacy(engine: Engine, chunk: int = 5_000) -> int:
    """Move the batches of a store written before the compact one (table `meter_batches`, readings
    as JSON) into `signed_batches` and `meter_days`, in one transaction, then drop the old table;
    returns how many moved. Nothing is lost: the signed content, the receive time and the gap of
    each ack are kept, so every ack is rebuilt byte for byte. A no-op without the old table."""
    from sqlalchemy import inspect

    with Session(engine) as session:
        if "meter_batches" not in inspect(session.connection()).get_table_names():
            return 0
    moved = 0
    with db.write_transaction(engine, LOCK_KEY) as session:
        connection = session.connection()
        rows = connection.execute(text(
            "SELECT device, sequence, start, interval_seconds, readings, signature, digest, received_at, ack "
            "FROM meter_batches ORDER BY id")).all()
        ids: dict[str, int] = {}
        days: dict[tuple[int, int], _Day] = {}
        for device, sequence, start, interval, readings, signature, digest, received_at, ack in rows:
            meter = ids.get(device)
            if meter is None:
                meter = connection.execute(text("INSERT INTO meters (address) VALUES (:address) RETURNING id"),
                                           {"address": device}).scalar_one()
                ids[device] = meter
            values = tuple(int(v) for v in json.loads(readings))
            gap = json.loads(ack).get("gap")
            connection.execute(_INSERT_BATCH, {
                "meter": meter, "sequence": sequence, "start": start, "interval_seconds": interval,
                "readings": pack(values), "signature": bytes.fromhex(signature.removeprefix("0x")),
                "digest": bytes.fromhex(digest.removeprefix("0x")), "received_at": received_at,
                "gap_expected": None if not gap else int(gap["expected"])})
            for day, lo, hi, offset in _spans(int(start), int(interval), len(values)):
                days.setdefault((meter, day), _Day(int(interval))).put(lo, hi, values[offset:offset + hi - lo])
            moved += 1
        rows_out = [days[key].row(*key) for key in sorted(days)]
        for lo in range(0, len(rows_out), chunk):
            connection.execute(_UPSERT_DAY, rows_out[lo:lo + chunk])
        connection.execute(text("DROP TABLE meter_batches"))
    forget_ids(engine)
    logger.info("moved %d meter batches to the compact store", moved)
    return moved
