"""oracle.baseline_cli: `negawatt oracle baseline` on a CSV, registered in a throwaway typer app both
ways the CLI can wire it, and exit code 2 with one `error:` line for every kind of bad input."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta

import pytest
import typer
from typer.testing import CliRunner

from oracle.baseline_cli import InputError, baseline_app, baseline_command, fraction_to_bps
from oracle.baselines import BaselineSpec, compute_device_baseline

runner = CliRunner()
EVENT_DAY = date(2026, 7, 1)  # Wednesday


def as_group() -> typer.Typer:
    app, oracle = typer.Typer(), typer.Typer()
    app.add_typer(oracle, name="oracle")
    oracle.add_typer(baseline_app, name="baseline")
    return app


def as_command() -> typer.Typer:
    app, oracle = typer.Typer(), typer.Typer()
    app.add_typer(oracle, name="oracle")
    oracle.command("baseline")(baseline_command)
    return app


def stamp(day: date, minute: int) -> str:
    moment = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(minutes=minute)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def readings_csv() -> tuple[str, dict[str, dict[int, int]]]:
    """Two devices, 15-minute data 08:00-18:00 on 20 days; loads vary by day, hour and device."""
    lines = ["device,timestamp,wh"]
    parsed: dict[str, dict[int, int]] = {"meter-b": {}, "meter-a": {}}
    for device, offset in (("meter-b", 7), ("meter-a", 0)):
        for back in range(20, -1, -1):
            day = EVENT_DAY - timedelta(days=back)
            for minute in range(8 * 60, 18 * 60, 15):
                wh = 200 + offset + (back * 13 + minute // 15 * 7) % 41
                if back == 0 and minute >= 14 * 60:
                    wh -= 120  # curtailed during the event
                text = stamp(day, minute)
                lines.append(f"{device},{text},{wh}")
                parsed[device][int(datetime.fromisoformat(text).timestamp())] = wh
    return "\n".join(lines) + "\n", parsed


ARGS = [
    "--event-start",
    "2026-07-01T14:00:00Z",
    "--event-end",
    "2026-07-01T15:00:00+00:00",
    "--interval",
    "900",
]


def invoke(app, path, *extra):
    return runner.invoke(app, ["oracle", "baseline", "--readings", str(path), *ARGS, *extra])


@pytest.mark.parametrize("make_app", [as_group, as_command])
def test_cli_matches_the_library(tmp_path, make_app):
    content, parsed = readings_csv()
    path = tmp_path / "r.csv"
    path.write_text(content)
    result = invoke(make_app(), path, "--method", "caiso-10in10", "--adjustment", "ratio", "--cap", "0.25")
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.stdout)
    assert [d["device"] for d in out["devices"]] == ["meter-a", "meter-b"]
    start = int(datetime(2026, 7, 1, 14, tzinfo=UTC).timestamp())
    spec = BaselineSpec(method="caiso-10in10", adjustment="ratio", cap_bps=2_500, interval_seconds=900)
    for record in out["devices"]:
        expected = compute_device_baseline(
            spec, parsed[record["device"]], start, start + 3_600, record["device"]
        )
        assert record == expected.to_dict()
        assert len(record["baseline_wh"]) == 4 and record["adjustment"]["cap_bps"] == 2_500
        assert {
            "device",
            "baseline_wh",
            "actual_wh",
            "curtailed_wh",
            "adjustment",
            "quality",
            "eligible",
        } <= set(record)


def test_cli_options_reach_the_engine(tmp_path):
    content, _ = readings_csv()
    path = tmp_path / "r.csv"
    path.write_text(content)
    result = invoke(
        as_group(),
        path,
        "--method",
        "high-x-of-y",
        "--x",
        "2",
        "--y",
        "3",
        "--adjustment",
        "additive",
        "--holiday",
        "2026-06-30",
        "--event-day",
        "2026-06-29",
        "--max-rrmse-bps",
        "100",
    )
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)["devices"][0]
    assert record["selected_days"] and not {"2026-06-30", "2026-06-29"} & set(record["selected_days"])
    assert record["adjustment"]["kind"] == "additive" and record["quality"]["max_rrmse_bps"] == 100
    mba = invoke(as_command(), path, "--method", "meter-before-after", "--before-intervals", "4")
    record = json.loads(mba.stdout)["devices"][0]
    assert mba.exit_code == 0 and len(set(record["baseline_wh"])) == 1


GOOD_ROW = "d1,2026-07-01T13:45:00Z,10"


@pytest.mark.parametrize(
    "content, message",
    [
        ("device,time,wh\n" + GOOD_ROW + "\n", "line 1: header must be exactly device,timestamp,wh"),
        ("", "empty file"),
        (
            "device,timestamp,wh\nd1,2026-07-01 13:45,10\n",
            "line 2: timestamp '2026-07-01 13:45' has no UTC designator",
        ),
        (
            "device,timestamp,wh\nd1,yesterday,10\n",
            "line 2: timestamp 'yesterday' is not an ISO 8601 timestamp",
        ),
        ("device,timestamp,wh\nd1,2026-07-01T13:45:00+02:00,10\n", "line 2: timestamp .* is not UTC"),
        (
            "device,timestamp,wh\n" + GOOD_ROW + "\nd1,2026-07-01T13:50:00Z,10\n",
            "line 3: timestamp .* not aligned",
        ),
        (
            "device,timestamp,wh\nd1,2026-07-01T13:45:00Z,-3\n",
            "line 2: wh '-3' must be a non-negative integer",
        ),
        (
            "device,timestamp,wh\nd1,2026-07-01T13:45:00Z,1.5\n",
            "line 2: wh '1.5' must be a non-negative integer",
        ),
        ("device,timestamp,wh\nd1,2026-07-01T13:45:00Z,\n", "line 2: wh '' must be a non-negative integer"),
        ("device,timestamp,wh\nd1,2026-07-01T13:45:00Z,99999999\n", "line 2: wh 99999999 exceeds"),
        (
            "device,timestamp,wh\n" + GOOD_ROW + "\n" + GOOD_ROW + "\n",
            "line 3: duplicate reading for device 'd1' at '2026-07-01T13:45:00Z' \\(first on line 2\\)",
        ),
        ("device,timestamp,wh\nd1,2026-07-01T13:45:00Z\n", "line 2: expected 3 fields"),
        ("device,timestamp,wh\n,2026-07-01T13:45:00Z,4\n", "line 2: device is empty"),
    ],
)
def test_bad_csv_exits_2_with_one_error_line(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    result = invoke(as_group(), path, "--method", "caiso-10in10")
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")

    assert re.search(message, lines[0]), lines[0]


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--method", "pjm-magic"], "--method: unknown method 'pjm-magic'"),
        (["--method", "caiso-10in10", "--adjustment", "sideways"], "--adjustment: unknown adjustment"),
        (["--method", "caiso-10in10", "--cap", "0.00005"], "more precision than 1 basis point"),
        (["--method", "caiso-10in10", "--cap", "1.5"], "must be within \\[0, 1\\]"),
        (["--method", "caiso-10in10", "--cap", "-0.1"], "must be within \\[0, 1\\]"),
        (["--method", "caiso-10in10", "--cap", "nan"], "must be within"),
        (["--method", "caiso-10in10", "--cap", "twenty"], "not a decimal number"),
        (["--method", "high-x-of-y", "--x", "6", "--y", "5"], "x \\(6\\) must not exceed y \\(5\\)"),
        (["--method", "meter-before-after", "--adjustment", "ratio"], "no same-day adjustment"),
        (["--method", "caiso-10in10", "--holiday", "July 4th"], "--holiday 'July 4th' is not an ISO date"),
    ],
)
def test_bad_options_exit_2(tmp_path, extra, message):
    path = tmp_path / "r.csv"
    path.write_text("device,timestamp,wh\n" + GOOD_ROW + "\n")
    result = invoke(as_command(), path, *extra)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1

    assert re.search(message, result.stderr), result.stderr


@pytest.mark.parametrize(
    "start, end, message",
    [
        ("2026-07-01T14:05:00Z", "2026-07-01T15:00:00Z", "event_start .* not aligned to the 900 s grid"),
        ("2026-07-01T14:00:00Z", "2026-07-01T15:10:00Z", "event_end .* not aligned"),
        ("2026-07-01T14:00:00Z", "2026-07-01T14:00:00Z", "must be after event_start"),
        ("2026-07-01T14:00:00", "2026-07-01T15:00:00Z", "--event-start .* no UTC designator"),
        ("2026-07-01T14:00:00Z", "soon", "--event-end 'soon' is not an ISO 8601 timestamp"),
    ],
)
def test_bad_event_window_exits_2(tmp_path, start, end, message):
    path = tmp_path / "r.csv"
    path.write_text("device,timestamp,wh\n" + GOOD_ROW + "\n")
    result = runner.invoke(
        as_group(),
        [
            "oracle",
            "baseline",
            "--method",
            "caiso-10in10",
            "--readings",
            str(path),
            "--event-start",
            start,
            "--event-end",
            end,
            "--interval",
            "900",
        ],
    )
    assert result.exit_code == 2

    assert result.stderr.startswith("error: ") and re.search(message, result.stderr), result.stderr


def test_missing_file_exits_2(tmp_path):
    result = invoke(as_group(), tmp_path / "nope.csv", "--method", "caiso-10in10")
    assert result.exit_code == 2 and result.stderr.startswith("error: no such file")


def test_cap_is_converted_exactly():
    assert fraction_to_bps("0.2", "--cap") == 2_000
    assert fraction_to_bps("0.0001", "--cap") == 1
    assert fraction_to_bps("1", "--cap") == 10_000
    assert fraction_to_bps("0.12340", "--cap") == 1_234
    with pytest.raises(InputError):
        fraction_to_bps("0.12345", "--cap")
    with pytest.raises(InputError):
        fraction_to_bps("inf", "--cap")
