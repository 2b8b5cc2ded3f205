"""`negawatt oracle verify`: a portfolio's verified reduction from anyone's site-meter CSVs, as JSON.

    negawatt oracle verify --readings READINGS.csv --groups GROUPS.csv \\
        --event-start 2026-07-01T14:00:00Z --event-end 2026-07-01T16:00:00Z --interval 900 [--method did]

The rule: this module only reads and checks; the estimate is `oracle.portfolio.verify_readings`, the
same code the oracle settles with. Everything doubtful is refused before the estimator runs: exit
code 2, one `error: ...` line on stderr naming the file, the 1-based line and what is wrong, and
nothing on stdout. Data the estimator itself cannot use (`VerifyError`, e.g. no dispatched site with
a baseline) exits the same way with its reason. A good run prints exactly one JSON object on stdout
(`Verification.to_dict()`).

Options
-------
--event-start / --event-end: ISO 8601 with an explicit offset (`Z`, `+00:00`, `+02:00`, ...);
naive times and fractional seconds are refused. Both on the interval grid (multiples of the
interval since 1970-01-01T00:00Z), end after start, at most one day apart. The end is exclusive.
Like-days and weekdays are UTC dates (the estimator's default baseline has no UTC offset).
--interval: seconds, at least 60, dividing 86400. --method: one of `oracle.portfolio.METHODS`.

Files
-----
READINGS.csv is read by `oracle.baseline_cli.read_readings`, the reader of `oracle baseline`: header
exactly `device,timestamp,wh`; timestamp = interval start, ISO 8601 UTC (`Z` or `+00:00`), on the
grid; wh a non-negative integer <= oracle.baselines.MAX_WH; one reading per (device, timestamp).
GROUPS.csv: header exactly `device,group`; group `treatment` (dispatched) or `control` (held out);
each device once (ids compared case-insensitively, as the estimator does); at least one device.

Completeness ("gaps"), for every device in GROUPS.csv: it must have readings, and a reading in every
interval from its first reading inside the estimate's history (the `HISTORY_DAYS` days before the
event start: older readings are ignored, gaps there too) up to the event end, so the whole event
window is covered. A missing interval is an error naming the reading just before it (or the first
reading after it). Readings at or after the event end are ignored. A device whose history is too
short for a like-day baseline is not a bad file: the estimator leaves it out of the estimate and the
output lists it with its reasons (`included: false`). Devices in READINGS.csv without a group are
ignored (a warning on stderr says which).

Bounds, checked before or while parsing so cost is bounded whatever the input (`VerifyLimits`,
defaults below): file sizes (READINGS 128 MiB, GROUPS 4 MiB), rows (2,000,000 readings, 20,000
devices), field length (128 characters), and the estimator's grid (devices x history intervals
<= 10,000,000 cells, about 1,000 sites with 92 days of 15-minute history).
"""

from __future__ import annotations

import csv
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from pydantic import BaseModel, ConfigDict, Field

from oracle.baseline_cli import InputError, read_readings
from oracle.baselines import MAX_LOOKBACK_DAYS, BaselineError
from oracle.estimators import EstimatorError
from oracle.portfolio import DEFAULT_METHOD, GROUPS, METHODS, VerifyError, verify_readings
from protocol.instants import InstantError
from protocol.instants import parse_instant as parse_protocol_instant
from protocol.units import SECONDS_PER_DAY

log = logging.getLogger(__name__)

GROUPS_HEADER = ["device", "group"]
MIN_INTERVAL_SECONDS = 60  # as oracle.baselines.BaselineSpec requires
HISTORY_DAYS = 2 * MAX_LOOKBACK_DAYS + 2  # the history oracle.baselines.build_grid keeps by default

MAX_READINGS_BYTES = 128 * 1024 * 1024
MAX_GROUPS_BYTES = 4 * 1024 * 1024
MAX_READINGS_ROWS = 2_000_000
MAX_GROUPS_ROWS = 20_000
MAX_FIELD_CHARS = 128
MAX_GRID_CELLS = 10_000_000


class VerifyLimits(BaseModel):
    """Bounds on the input of `negawatt oracle verify` (sizes in bytes, rows, characters, cells)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_readings_bytes: int = Field(MAX_READINGS_BYTES, ge=1)
    max_groups_bytes: int = Field(MAX_GROUPS_BYTES, ge=1)
    max_readings_rows: int = Field(MAX_READINGS_ROWS, ge=1)
    max_groups_rows: int = Field(MAX_GROUPS_ROWS, ge=1)
    max_field_chars: int = Field(MAX_FIELD_CHARS, ge=1)
    max_grid_cells: int = Field(MAX_GRID_CELLS, ge=1)


LIMITS = VerifyLimits()  # what the command uses


def iso(timestamp: int) -> str:
    """A unix timestamp as ISO 8601 UTC with a Z, the form error messages quote."""
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def history_start(event_start: int) -> int:
    """The oldest interval start the estimate can read for an event (older readings are ignored)."""
    return event_start - HISTORY_DAYS * SECONDS_PER_DAY


def parse_instant(text: str, option: str) -> int:
    """Unix seconds of an ISO 8601 time with an explicit offset (Z or +hh:mm), by protocol.instants'
    rules: naive times are refused because the instant they mean depends on a time zone the command
    cannot know."""
    try:
        return parse_protocol_instant(text, option, allow_unix=False)
    except InstantError as error:
        raise InputError(str(error)) from None


def check_options(method: str, interval: int, event_start: str, event_end: str) -> tuple[int, int]:
    """The event window (start, end) in unix seconds, after checking every option; InputError if not."""
    if method not in METHODS:
        raise InputError(f"--method: unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if not MIN_INTERVAL_SECONDS <= interval <= SECONDS_PER_DAY or SECONDS_PER_DAY % interval:
        raise InputError(
            f"--interval {interval}: must be at least {MIN_INTERVAL_SECONDS} s and divide "
            f"{SECONDS_PER_DAY} (one day)"
        )
    start = parse_instant(event_start, "--event-start")
    end = parse_instant(event_end, "--event-end")
    for option, text, moment in (("--event-start", event_start, start), ("--event-end", event_end, end)):
        if moment % interval:
            raise InputError(
                f"{option} {text!r} is not on the {interval} s interval grid "
                f"(interval starts are multiples of {interval} s since 1970-01-01T00:00:00Z)"
            )
    if end <= start:
        raise InputError(f"--event-end ({iso(end)}) must be after --event-start ({iso(start)})")
    if end - start > SECONDS_PER_DAY:
        raise InputError(f"the event window must be at most one day, got {end - start} s "
                         f"({iso(start)} to {iso(end)})")
    return start, end


def check_file(path: Path, max_bytes: int) -> None:
    """Refuse a missing, non-regular or oversized file before any of it is parsed."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    if not path.is_file():
        raise InputError(f"{path}: not a regular file")
    if info.st_size > max_bytes:
        raise InputError(f"{path}: {info.st_size} bytes exceeds the limit of {max_bytes} bytes")


def read_groups(path: Path, limits: VerifyLimits) -> tuple[dict[str, str], dict[str, int]]:
    """Parse GROUPS.csv into ({device: group}, {device: line}), refusing anything doubtful."""
    check_file(path, limits.max_groups_bytes)
    groups: dict[str, str] = {}
    lines: dict[str, int] = {}
    folded: dict[str, tuple[str, int]] = {}  # lower-cased id -> (id, line): the estimator folds case
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise InputError(f"{path}: empty file, expected the header {','.join(GROUPS_HEADER)}")
            if [h.strip() for h in header] != GROUPS_HEADER:
                raise InputError(f"{path}: line 1: header must be exactly {','.join(GROUPS_HEADER)}, "
                                 f"got {','.join(header)}")
            for row in reader:
                line = reader.line_num
                if not row:
                    continue
                if len(row) != len(GROUPS_HEADER):
                    raise InputError(f"{path}: line {line}: expected 2 fields (device,group), got {len(row)}")
                if len(groups) >= limits.max_groups_rows:
                    raise InputError(
                        f"{path}: line {line}: more than the limit of {limits.max_groups_rows} devices"
                    )
                for name, value in zip(GROUPS_HEADER, row):
                    if len(value) > limits.max_field_chars:
                        raise InputError(f"{path}: line {line}: {name} is longer than the limit of "
                                         f"{limits.max_field_chars} characters")
                device, group = row[0].strip(), row[1].strip()
                if not device:
                    raise InputError(f"{path}: line {line}: device is empty")
                if group not in GROUPS:
                    raise InputError(f"{path}: line {line}: device {device!r}: unknown group {row[1]!r} "
                                     f"(expected {' or '.join(GROUPS)})")
                key = device.lower()
                if key in folded:
                    first, first_line = folded[key]
                    same = "" if first == device else f" as {first!r} (ids are compared case-insensitively)"
                    raise InputError(f"{path}: line {line}: device {device!r} is listed twice: "
                                     f"first on line {first_line}{same}")
                folded[key] = (device, line)
                groups[device] = group
                lines[device] = line
        except csv.Error as error:
            raise InputError(f"{path}: line {reader.line_num}: {error}") from None
        except UnicodeDecodeError:
            raise InputError(f"{path}: not UTF-8 text") from None
    if not groups:
        raise InputError(f"{path}: no devices after the header")
    return groups, lines


def check_complete(path: Path, device: str, stamps: dict[int, int], lines: dict[tuple[str, int], int],
                   event_start: int, event_end: int, interval: int) -> int:
    """Refuse a gap in one device's readings (see the module docstring); returns the first interval
    start the estimate reads for it (its first reading inside the history, at most event_start)."""
    used = sorted(t for t in stamps if history_start(event_start) <= t < event_end)
    if not used:
        later = [t for t in stamps if t >= event_end]
        where = min(later) if later else max(stamps)
        raise InputError(f"{path}: line {lines[(device, where)]}: device {device!r} has no reading in the "
                         f"event window {iso(event_start)} to {iso(event_end)} (nor in the {HISTORY_DAYS} "
                         "days before it)")
    first = used[0]
    if first > event_start:
        raise InputError(f"{path}: line {lines[(device, first)]}: device {device!r} has no reading at the "
                         f"event start {iso(event_start)}: its first reading is this one, at {iso(first)}")
    if len(used) != (event_end - first) // interval:
        for before, after in zip(used, used[1:]):
            if after != before + interval:
                raise InputError(f"{path}: line {lines[(device, before)]}: device {device!r}: gap after this "
                                 f"reading: no reading at {iso(before + interval)} (the next one, on line "
                                 f"{lines[(device, after)]}, is at {iso(after)})")
        last = used[-1]
        raise InputError(f"{path}: line {lines[(device, last)]}: device {device!r}: its readings stop at "
                         f"this one, no reading at {iso(last + interval)}, before the event end "
                         f"{iso(event_end)}")
    return first


def run(readings_path: Path, groups_path: Path, event_start: str, event_end: str, interval: int,
        method: str = DEFAULT_METHOD, limits: VerifyLimits | None = None) -> dict:
    """The command's work: check the options and both files, then the portfolio estimate as a dict.
    Raises InputError (bad options or files) or VerifyError (data the estimator cannot use)."""
    limits = LIMITS if limits is None else limits
    start, end = check_options(method, interval, event_start, event_end)
    check_file(readings_path, limits.max_readings_bytes)
    groups, group_lines = read_groups(groups_path, limits)
    reading_lines: dict[tuple[str, int], int] = {}
    readings = read_readings(readings_path, interval, max_rows=limits.max_readings_rows,
                             max_field_chars=limits.max_field_chars, line_numbers=reading_lines)
    if not readings:
        raise InputError(f"{readings_path}: no readings after the header")
    earliest = end
    for device, line in group_lines.items():
        if device not in readings:
            raise InputError(
                f"{groups_path}: line {line}: device {device!r} has no readings in {readings_path}"
            )
        first = check_complete(readings_path, device, readings[device], reading_lines, start, end, interval)
        earliest = min(earliest, first)
    cells = len(groups) * ((end - earliest) // interval)
    if cells > limits.max_grid_cells:
        raise InputError(f"{readings_path}: {len(groups)} devices x {(end - earliest) // interval} intervals "
                         f"of history = {cells} cells exceeds the limit of {limits.max_grid_cells}; "
                         "send fewer devices or a shorter history")
    ungrouped = sorted(set(readings) - set(groups))
    if ungrouped:
        shown = ", ".join(repr(d) for d in ungrouped[:5]) + (", ..." if len(ungrouped) > 5 else "")
        log.warning("%s: %d device(s) with no group in %s are ignored: %s", readings_path, len(ungrouped),
                    groups_path, shown)
    del reading_lines  # not needed by the estimator; free it before the grid is built
    oldest = history_start(start)
    used = {d: {t: wh for t, wh in readings[d].items() if oldest <= t < end} for d in groups}
    del readings
    try:
        result = verify_readings(used, groups, start, end, interval, method)
    except (BaselineError, EstimatorError) as error:
        raise VerifyError(str(error)) from None
    return result.to_dict()


def verify_command(
    readings: Annotated[Path, typer.Option("--readings", help="site-meter CSV: device,timestamp,wh")],
    groups: Annotated[Path, typer.Option("--groups", help="CSV: device,group (treatment|control)")],
    event_start: Annotated[
        str, typer.Option("--event-start", help="ISO 8601 with offset, e.g. 2026-07-01T14:00:00Z")
    ],
    event_end: Annotated[str, typer.Option("--event-end", help="ISO 8601 with offset, exclusive")],
    interval: Annotated[int, typer.Option("--interval", help="interval length in seconds, e.g. 900")],
    method: Annotated[str, typer.Option("--method", help=f"one of: {', '.join(METHODS)}")] = DEFAULT_METHOD,
) -> None:
    """The treatment group's verified reduction over the event, with its 95 % interval, as one JSON object."""
    try:
        result = run(readings, groups, event_start, event_end, interval, method, LIMITS)
    except (InputError, VerifyError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(json.dumps(result, separators=(",", ":")))
