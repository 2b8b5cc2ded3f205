"""`negawatt oracle baseline`: baselines of every device in a readings CSV, as JSON on stdout.

Register it either way:

    oracle_app.command("baseline")(baseline_command)        # a command of an existing group
    oracle_app.add_typer(baseline_app, name="baseline")      # a group whose callback is the command

CSV: header row exactly `device,timestamp,wh`; timestamp = interval start in ISO 8601 UTC
(`2026-07-01T14:00:00Z` or `+00:00`), aligned to `--interval`; wh = non-negative integer.
Output: {"devices": [{"device", "baseline_wh", "actual_wh", "curtailed_wh", "adjustment", "quality",
"eligible", "reasons", "flags", "selected_days"}, ...]} with devices sorted by id.
Bad input exits with code 2 and one `error: ...` line on stderr naming the line or option.
"""

from __future__ import annotations

import csv
import json
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated

import typer

from oracle.baselines import (
    ADJUSTMENTS,
    MAX_WH,
    METHODS,
    BaselineError,
    BaselineSpec,
    build_grid,
    compute_baselines,
    validate_window,
)
from protocol.units import BPS

HEADER = ["device", "timestamp", "wh"]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_DIGITS = re.compile(r"[0-9]+")


class InputError(ValueError):
    """Bad command-line input; the message is printed after `error: `."""


def parse_utc(text: str) -> int:
    """Unix seconds of an ISO 8601 timestamp that carries a UTC designator (Z or +00:00)."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{text!r} is not an ISO 8601 timestamp") from None
    if moment.tzinfo is None:
        raise InputError(f"{text!r} has no UTC designator (use Z or +00:00)")
    if moment.utcoffset() != timedelta(0):
        raise InputError(f"{text!r} is not UTC (use Z or +00:00)")
    if moment.microsecond:
        raise InputError(f"{text!r} has fractional seconds")
    return (moment - _EPOCH) // timedelta(seconds=1)


def fraction_to_bps(text: str, name: str, high: Decimal = Decimal(1)) -> int:
    """A decimal fraction given on the command line ("0.2") as exact basis points (2000)."""
    try:
        value = Decimal(text.strip())
    except InvalidOperation:
        raise InputError(f"{name} {text!r} is not a decimal number") from None
    if not value.is_finite() or not Decimal(0) <= value <= high:
        raise InputError(f"{name} {text!r} must be within [0, {high}]")
    bps = value * BPS
    if bps != bps.to_integral_value():
        raise InputError(f"{name} {text!r} has more precision than 1 basis point (0.0001)")
    return int(bps)


def parse_dates(values: list[str] | None, name: str) -> frozenset[date]:
    out = set()
    for value in values or []:
        try:
            out.add(date.fromisoformat(value.strip()))
        except ValueError:
            raise InputError(f"{name} {value!r} is not an ISO date (YYYY-MM-DD)") from None
    return frozenset(out)


def read_readings(
    path: Path,
    interval_seconds: int,
    *,
    max_rows: int | None = None,
    max_field_chars: int | None = None,
    line_numbers: dict[tuple[str, int], int] | None = None,
) -> dict[str, dict[int, int]]:
    """Parse the readings CSV into {device: {timestamp: wh}}, rejecting anything doubtful.

    Optional bounds (None = unbounded): at most `max_rows` readings, no field longer than
    `max_field_chars`. `line_numbers`, if given, is filled with {(device, timestamp): line}.
    """
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except OSError as error:
        raise InputError(f"cannot read {path}: {error.strerror}") from None
    readings: dict[str, dict[int, int]] = {}
    first_seen: dict[tuple[str, int], int] = {} if line_numbers is None else line_numbers
    rows = 0
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
            if header is None:
                raise InputError(f"{path}: empty file, expected the header {','.join(HEADER)}")
            if [h.strip() for h in header] != HEADER:
                raise InputError(
                    f"{path}: line 1: header must be exactly {','.join(HEADER)}, got {','.join(header)}"
                )
            for row in reader:
                line = reader.line_num
                if not row:
                    continue
                if len(row) != 3:
                    raise InputError(
                        f"{path}: line {line}: expected 3 fields (device,timestamp,wh), got {len(row)}"
                    )
                rows += 1
                if max_rows is not None and rows > max_rows:
                    raise InputError(f"{path}: line {line}: more than the limit of {max_rows} readings")
                if max_field_chars is not None:
                    for name, value in zip(HEADER, row):
                        if len(value) > max_field_chars:
                            raise InputError(
                                f"{path}: line {line}: {name} is longer than the limit of "
                                f"{max_field_chars} characters"
                            )
                device, stamp, wh_text = row[0].strip(), row[1], row[2].strip()
                if not device:
                    raise InputError(f"{path}: line {line}: device is empty")
                try:
                    timestamp = parse_utc(stamp)
                except InputError as error:
                    raise InputError(f"{path}: line {line}: timestamp {error}") from None
                if timestamp % interval_seconds:
                    raise InputError(
                        f"{path}: line {line}: timestamp {stamp!r} is not aligned to the "
                        f"{interval_seconds} s interval grid"
                    )
                if not _DIGITS.fullmatch(wh_text):
                    raise InputError(f"{path}: line {line}: wh {row[2]!r} must be a non-negative integer")
                wh = int(wh_text)
                if wh > MAX_WH:
                    raise InputError(
                        f"{path}: line {line}: wh {wh} exceeds the limit of {MAX_WH} Wh per interval"
                    )
                key = (device, timestamp)
                if key in first_seen:
                    raise InputError(
                        f"{path}: line {line}: duplicate reading for device {device!r} at {stamp!r} "
                        f"(first on line {first_seen[key]})"
                    )
                first_seen[key] = line
                readings.setdefault(device, {})[timestamp] = wh
        except csv.Error as error:
            raise InputError(f"{path}: line {reader.line_num}: {error}") from None
        except UnicodeDecodeError:
            raise InputError(f"{path}: not UTF-8 text") from None
    return readings


def run(
    method: str,
    readings_path: Path,
    event_start: str,
    event_end: str,
    interval: int,
    adjustment: str,
    cap: str,
    x: int,
    y: int,
    holidays: list[str] | None,
    event_days: list[str] | None,
    utc_offset: int,
    min_days: int | None,
    quality_days: int,
    max_rrmse_bps: int,
    jump_flag_bps: int,
    adjustment_window: int,
    adjustment_gap: int,
    before_intervals: int,
) -> dict:
    """The command's work, raising InputError / BaselineError on bad input."""
    if method not in METHODS:
        raise InputError(f"--method: unknown method {method!r}; expected one of {', '.join(METHODS)}")
    if adjustment not in ADJUSTMENTS:
        raise InputError(
            f"--adjustment: unknown adjustment {adjustment!r}; expected one of {', '.join(ADJUSTMENTS)}"
        )
    cap_bps = fraction_to_bps(cap, "--cap")
    spec = BaselineSpec(
        method=method,
        interval_seconds=interval,
        adjustment=adjustment,
        cap_bps=cap_bps,
        x=x,
        y=y,
        min_days=min_days,
        adjustment_window_seconds=adjustment_window,
        adjustment_gap_seconds=adjustment_gap,
        jump_flag_bps=jump_flag_bps,
        before_intervals=before_intervals,
        utc_offset_seconds=utc_offset,
        holidays=parse_dates(holidays, "--holiday"),
        event_days=parse_dates(event_days, "--event-day"),
        quality_days=quality_days,
        max_rrmse_bps=max_rrmse_bps,
    )
    try:
        start = parse_utc(event_start)
    except InputError as error:
        raise InputError(f"--event-start {error}") from None
    try:
        end = parse_utc(event_end)
    except InputError as error:
        raise InputError(f"--event-end {error}") from None
    validate_window(spec, start, end)
    readings = read_readings(readings_path, interval)
    grid_start, devices, loads = build_grid(readings, interval, start, end)
    batch = compute_baselines(spec, grid_start, loads, start, end, devices)
    return {"devices": [record.to_dict() for record in batch]}


def baseline_command(
    method: Annotated[str, typer.Option("--method", help=f"one of: {', '.join(METHODS)}")],
    readings: Annotated[Path, typer.Option("--readings", help="CSV with header device,timestamp,wh")],
    event_start: Annotated[
        str, typer.Option("--event-start", help="ISO 8601 UTC, e.g. 2026-07-01T14:00:00Z")
    ],
    event_end: Annotated[str, typer.Option("--event-end", help="ISO 8601 UTC, exclusive")],
    interval: Annotated[int, typer.Option("--interval", help="interval length in seconds, e.g. 900")],
    adjustment: Annotated[str, typer.Option("--adjustment", help="none, additive or ratio")] = "none",
    cap: Annotated[
        str, typer.Option("--cap", help="same-day adjustment cap as a fraction, 1 bp precision")
    ] = "0.2",
    x: Annotated[int, typer.Option("--x", help="high-x-of-y: days kept")] = 4,
    y: Annotated[int, typer.Option("--y", help="high-x-of-y: days considered")] = 5,
    holiday: Annotated[
        list[str] | None, typer.Option("--holiday", help="holiday date YYYY-MM-DD (repeatable)")
    ] = None,
    event_day: Annotated[
        list[str] | None,
        typer.Option("--event-day", help="date of an earlier event, excluded from history (repeatable)"),
    ] = None,
    utc_offset: Annotated[
        int, typer.Option("--utc-offset", help="fixed offset (s) that decides dates and weekdays")
    ] = 0,
    min_days: Annotated[
        int | None, typer.Option("--min-days", help="fewest usable like-days accepted")
    ] = None,
    quality_days: Annotated[
        int, typer.Option("--quality-days", help="placebo days for the quality gate")
    ] = 5,
    max_rrmse_bps: Annotated[int, typer.Option("--max-rrmse-bps", help="quality gate, RRMSE in bps")] = 2_000,
    jump_flag_bps: Annotated[
        int, typer.Option("--jump-flag-bps", help="pre-event load jump flag, bps")
    ] = 5_000,
    adjustment_window: Annotated[int, typer.Option("--adjustment-window", help="seconds")] = 10_800,
    adjustment_gap: Annotated[
        int, typer.Option("--adjustment-gap", help="seconds before event start")
    ] = 3_600,
    before_intervals: Annotated[
        int, typer.Option("--before-intervals", help="meter-before-after intervals")
    ] = 2,
) -> None:
    """Compute each device's baseline, curtailment, adjustment and quality gate for one event window."""
    try:
        result = run(
            method,
            readings,
            event_start,
            event_end,
            interval,
            adjustment,
            cap,
            x,
            y,
            holiday,
            event_day,
            utc_offset,
            min_days,
            quality_days,
            max_rrmse_bps,
            jump_flag_bps,
            adjustment_window,
            adjustment_gap,
            before_intervals,
        )
    except (InputError, BaselineError) as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(json.dumps(result, separators=(",", ":")))


baseline_app = typer.Typer(help="Demand-response baselines.", add_completion=False)
baseline_app.callback(invoke_without_command=True)(baseline_command)
