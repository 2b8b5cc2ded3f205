"""oracle.verify_cli: `negawatt oracle verify` on CSV files. Every bad file exits 2 with one `error:` line
naming the file and the 1-based line, and nothing on stdout; a good portfolio prints one JSON object
whose estimate and 95 % interval match a computation by hand in this file."""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oracle import verify_cli
from oracle.baselines import MAX_WH
from oracle.cli import oracle_app
from oracle.verify_cli import VerifyLimits

runner = CliRunner()
INTERVAL = 900
EVENT_START = datetime(2026, 7, 1, 14, tzinfo=UTC)  # a Wednesday
EVENT_END = EVENT_START + timedelta(hours=2)
EVENT_INTERVALS = 8
WINDOW = ["--event-start", "2026-07-01T14:00:00Z", "--event-end", "2026-07-01T16:00:00+00:00",
          "--interval", str(INTERVAL)]


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def write(path: Path, header: str, rows: list[list[str]]) -> Path:
    path.write_text("\n".join([header, *(",".join(str(v) for v in row) for row in rows)]) + "\n")
    return path


def invoke(readings: Path, groups: Path, *extra: str, window: list[str] | None = None):
    args = ["verify", "--readings", str(readings), "--groups", str(groups),
            *(WINDOW if window is None else window), *extra]
    return runner.invoke(oracle_app, args)


def refused(result, *needles: str) -> str:
    """Assert the command refused its input the documented way and return the message."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


# --- a tiny, well-formed pair of files (too little history to estimate, enough to validate) ---------
# READINGS: line 1 header; site-a 12:00..15:45 on lines 2..17; site-b the same on lines 18..33.

def tiny_rows() -> list[list[str]]:
    rows = []
    for device, wh in (("site-a", 100), ("site-b", 120)):
        for k in range(16):
            moment = EVENT_START - timedelta(hours=2) + k * timedelta(seconds=INTERVAL)
            rows.append([device, stamp(moment), str(wh)])
    return rows


TINY_GROUPS = [["site-a", "treatment"], ["site-b", "control"]]


@pytest.fixture
def files(tmp_path):
    def make(rows=None, groups=None, readings_header="device,timestamp,wh", groups_header="device,group"):
        readings = write(tmp_path / "READINGS.csv", readings_header, tiny_rows() if rows is None else rows)
        group_file = write(tmp_path / "GROUPS.csv", groups_header, TINY_GROUPS if groups is None else groups)
        return readings, group_file
    return make


def line_of(rows: list[list[str]], device: str, hhmm: str) -> int:
    """1-based line of a reading in a file written by `write` (the header is line 1)."""
    text = f"2026-07-01T{hhmm}:00Z"
    return next(i for i, row in enumerate(rows) if row[0] == device and row[1] == text) + 2


# --- READINGS.csv --------------------------------------------------------------------------------

@pytest.mark.parametrize("header", ["device,timestamp", "device,timestamp,wh,extra", "device,time,wh"])
def test_readings_header_must_be_exact(files, header):
    readings, groups = files(readings_header=header)
    refused(invoke(readings, groups), str(readings), "line 1", "header must be exactly device,timestamp,wh")


def test_readings_row_with_a_missing_or_extra_field(files):
    rows = tiny_rows()
    rows[3] = rows[3][:2]
    rows[5] = [*rows[5], "7"]
    readings, groups = files(rows)
    refused(invoke(readings, groups), str(readings), "line 5:", "expected 3 fields")


@pytest.mark.parametrize("wh", ["12.5", "-3", "abc", "", "1e3", str(MAX_WH + 1)])
def test_readings_wh_must_be_a_non_negative_integer(files, wh):
    rows = tiny_rows()
    rows[6][2] = wh
    readings, groups = files(rows)
    refused(invoke(readings, groups), str(readings), "line 8:", "wh")


def test_readings_timestamp_off_the_grid(files):
    rows = tiny_rows()
    rows[9][1] = "2026-07-01T14:07:00Z"
    readings, groups = files(rows)
    refused(invoke(readings, groups), str(readings), "line 11:", "not aligned to the 900 s interval grid")


@pytest.mark.parametrize("text", ["2026-07-01T14:00:00", "2026-07-01T16:00:00+02:00", "yesterday"])
def test_readings_timestamp_must_be_utc_as_oracle_baseline_takes_it(files, text):
    rows = tiny_rows()
    rows[20][1] = text
    readings, groups = files(rows)
    refused(invoke(readings, groups), str(readings), "line 22:", "timestamp")


def test_readings_duplicate_device_and_timestamp(files):
    rows = tiny_rows()
    rows.insert(20, list(rows[3]))  # site-a 12:45 again, on line 22
    readings, groups = files(rows)
    refused(invoke(readings, groups), str(readings), "line 22:", "duplicate reading", "'site-a'",
            "first on line 5")


def test_readings_gap_inside_the_history(files):
    rows = tiny_rows()
    before = line_of(rows, "site-a", "12:45")
    rows = [r for r in rows if not (r[0] == "site-a" and r[1] == "2026-07-01T13:00:00Z")]
    readings, groups = files(rows)
    refused(invoke(readings, groups), str(readings), f"line {before}:", "'site-a'", "gap after this reading",
            "no reading at 2026-07-01T13:00:00Z", f"on line {before + 1}, is at 2026-07-01T13:15:00Z")


def test_readings_gap_inside_the_event_window(files):
    rows = tiny_rows()
    before = line_of(rows, "site-b", "14:45")
    rows = [r for r in rows if not (r[0] == "site-b" and r[1] == "2026-07-01T15:00:00Z")]
    readings, groups = files(rows)
    refused(invoke(readings, groups), str(readings), f"line {before}:", "'site-b'",
            "no reading at 2026-07-01T15:00:00Z")


def test_readings_that_stop_before_the_event_end(files):
    rows = tiny_rows()
    last = line_of(rows, "site-a", "15:15")
    rows = [r for r in rows if not (r[0] == "site-a" and r[1] > "2026-07-01T15:15:00Z")]
    readings, groups = files(rows)
    refused(invoke(readings, groups), str(readings), f"line {last}:", "'site-a'", "readings stop at this one",
            "no reading at 2026-07-01T15:30:00Z", "before the event end 2026-07-01T16:00:00Z")


def test_readings_that_start_inside_the_event_window(files):
    rows = [r for r in tiny_rows() if not (r[0] == "site-b" and r[1] < "2026-07-01T14:30:00Z")]
    first = next(i for i, r in enumerate(rows) if r[0] == "site-b") + 2
    readings, groups = files(rows)
    refused(invoke(readings, groups), str(readings), f"line {first}:", "'site-b'",
            "no reading at the event start 2026-07-01T14:00:00Z",
            "first reading is this one, at 2026-07-01T14:30:00Z")


def test_readings_only_after_the_event(files):
    rows = [r for r in tiny_rows() if r[0] == "site-b"]
    rows += [["site-a", stamp(EVENT_END + timedelta(seconds=k * INTERVAL)), "5"] for k in range(3)]
    readings, groups = files(rows)
    refused(invoke(readings, groups), str(readings), f"line {len(rows) - 1}:", "'site-a'",
            "has no reading in the event window")


def test_readings_empty_file_and_header_only(tmp_path, files):
    _, groups = files()
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    refused(invoke(empty, groups), str(empty), "empty file")
    header_only = write(tmp_path / "header.csv", "device,timestamp,wh", [])
    refused(invoke(header_only, groups), str(header_only), "no readings after the header")


def test_readings_missing_file_and_not_utf8(tmp_path, files):
    _, groups = files()
    refused(invoke(tmp_path / "nope.csv", groups), "no such file", "nope.csv")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"device,timestamp,wh\nsite-\xff,2026-07-01T14:00:00Z,1\n")
    refused(invoke(binary, groups), str(binary), "not UTF-8")


def test_readings_field_length_cap(files):
    rows = tiny_rows()
    rows[2][0] = "x" * (verify_cli.MAX_FIELD_CHARS + 1)
    readings, groups = files(rows)
    refused(invoke(readings, groups), str(readings), "line 4:",
            "device is longer than the limit of 128 characters")


def test_readings_size_row_and_grid_caps(files, monkeypatch):
    readings, groups = files()
    monkeypatch.setattr(verify_cli, "LIMITS", VerifyLimits(max_readings_bytes=100))
    refused(invoke(readings, groups), str(readings), "exceeds the limit of 100 bytes")
    monkeypatch.setattr(verify_cli, "LIMITS", VerifyLimits(max_readings_rows=10))
    refused(invoke(readings, groups), str(readings), "line 12:", "more than the limit of 10 readings")
    monkeypatch.setattr(verify_cli, "LIMITS", VerifyLimits(max_grid_cells=31))  # 2 devices x 16 intervals
    refused(invoke(readings, groups), str(readings), "2 devices x 16 intervals", "exceeds the limit of 31")


# --- GROUPS.csv ----------------------------------------------------------------------------------

@pytest.mark.parametrize("header", ["device", "device,group,weight", "site,group"])
def test_groups_header_must_be_exact(files, header):
    readings, groups = files(groups_header=header)
    refused(invoke(readings, groups), str(groups), "line 1", "header must be exactly device,group")


def test_groups_row_with_an_extra_field(files):
    readings, groups = files(groups=[["site-a", "treatment"], ["site-b", "control", "x"]])
    refused(invoke(readings, groups), str(groups), "line 3:", "expected 2 fields")


@pytest.mark.parametrize("group", ["placebo", "Treatment", ""])
def test_groups_unknown_group(files, group):
    readings, groups = files(groups=[["site-a", "treatment"], ["site-b", group]])
    refused(invoke(readings, groups), str(groups), "line 3:", "'site-b'", "unknown group",
            "expected treatment or control")


def test_groups_device_without_readings(files):
    readings, groups = files(groups=[*TINY_GROUPS, ["site-z", "control"]])
    refused(invoke(readings, groups), str(groups), "line 4:", "'site-z' has no readings in", str(readings))


@pytest.mark.parametrize("twin", ["site-a", "SITE-A"])
def test_groups_device_listed_twice(files, twin):
    readings, groups = files(groups=[*TINY_GROUPS, [twin, "control"]])
    refused(invoke(readings, groups), str(groups), "line 4:", "listed twice", "first on line 2")


def test_groups_empty_header_only_and_caps(tmp_path, files, monkeypatch):
    readings, _ = files()
    empty = tmp_path / "g-empty.csv"
    empty.write_text("")
    refused(invoke(readings, empty), str(empty), "empty file")
    header_only = write(tmp_path / "g-header.csv", "device,group", [])
    refused(invoke(readings, header_only), str(header_only), "no devices after the header")
    _, groups = files()
    monkeypatch.setattr(verify_cli, "LIMITS", VerifyLimits(max_groups_rows=1))
    refused(invoke(readings, groups), str(groups), "line 3:", "more than the limit of 1 devices")
    monkeypatch.setattr(verify_cli, "LIMITS", VerifyLimits(max_groups_bytes=10))
    refused(invoke(readings, groups), str(groups), "exceeds the limit of 10 bytes")


# --- options -------------------------------------------------------------------------------------

@pytest.mark.parametrize("window, needle", [
    (["--event-start", "2026-07-01T14:00:00", "--event-end", "2026-07-01T16:00:00Z"], "--event-start"),
    (["--event-start", "2026-07-01T14:00:00Z", "--event-end", "2026-07-01 16:00"], "no UTC offset"),
    (["--event-start", "2026-07-01T14:05:00Z", "--event-end", "2026-07-01T16:00:00Z"], "interval grid"),
    (["--event-start", "2026-07-01T14:00:00Z", "--event-end", "2026-07-01T14:00:00Z"], "must be after"),
    (["--event-start", "2026-07-01T14:00:00Z", "--event-end", "2026-07-02T14:15:00Z"], "at most one day"),
    (["--event-start", "2026-07-01T14:00:00.5Z", "--event-end", "2026-07-01T16:00:00Z"], "fractional"),
    (["--event-start", "soon", "--event-end", "2026-07-01T16:00:00Z"], "not an ISO 8601 time"),
])
def test_bad_event_window(files, window, needle):
    readings, groups = files()
    refused(invoke(readings, groups, window=[*window, "--interval", "900"]), needle)


@pytest.mark.parametrize("interval", ["0", "30", "7", "1000", "172800"])
def test_interval_must_divide_a_day(files, interval):
    readings, groups = files()
    window = WINDOW[:4] + ["--interval", interval]
    refused(invoke(readings, groups, window=window), "--interval", "divide 86400")


def test_unknown_method(files):
    readings, groups = files()
    refused(invoke(readings, groups, "--method", "magic"), "--method", "'magic'", "did")


def test_an_offset_other_than_utc_names_the_same_instant(files):
    """14:00Z and 16:00+02:00 are the same instant: the window is accepted and reaches the estimator,
    which refuses this tiny history (one day: no like-days) with its own reason, still exit 2."""
    readings, groups = files()
    window = ["--event-start", "2026-07-01T16:00:00+02:00", "--event-end", "2026-07-01T18:00:00+02:00",
              "--interval", "900"]
    refused(invoke(readings, groups, window=window), "no dispatched (treatment) site")


# --- a good portfolio, checked by hand ---------------------------------------------------------------
# 6 treatment and 6 control sites, 28 days of 900 s history before the event day. Every site draws a
# constant load on every weekday (c Wh per interval) and c + 40 on weekends, so the 10-in-10 like-day
# baseline of a weekday is exactly c, and any use of weekend days would show. On the event day, inside
# the window, a treatment site draws c + shift - cut, a control site c + shift (weather, say): its
# baseline error. A device with no group (and a gap) is in READINGS.csv and must be ignored, and so
# must a reading older than the estimate's history (a gap before the rest) and one after the event.

TREATMENT = {f"t{i}": (100 + 10 * i, shift, cut) for i, (shift, cut) in
             enumerate([(3, 30), (-1, 25), (4, 40), (0, 20), (2, 35), (1, 50)], 1)}
CONTROL = {f"c{j}": (105 + 10 * j, shift, 0) for j, shift in enumerate([2, -3, 5, 1, 0, 4], 1)}
SITES = {**TREATMENT, **CONTROL}
HISTORY_DAYS = 28


def site_load(base: int, shift: int, cut: int, moment: datetime) -> int:
    if moment.weekday() >= 5:
        return base + 40
    if EVENT_START <= moment < EVENT_END:
        return base + shift - cut
    return base


def portfolio_files(tmp_path: Path) -> tuple[Path, Path]:
    rows = []
    first = EVENT_START.replace(hour=0) - timedelta(days=HISTORY_DAYS)
    count = int((EVENT_END - first).total_seconds()) // INTERVAL
    for site, (base, shift, cut) in SITES.items():
        for k in range(count):
            moment = first + timedelta(seconds=k * INTERVAL)
            rows.append([site, stamp(moment), site_load(base, shift, cut, moment)])
    rows += [["meter-x", stamp(EVENT_START - timedelta(hours=k)), 7] for k in (0, 3)]  # no group, a gap
    rows.append(["t1", stamp(EVENT_START - timedelta(days=120)), 999])  # older than the history: ignored
    rows.append(["c1", stamp(EVENT_END + timedelta(hours=5)), 999])  # after the event end: ignored
    groups = [[s, "treatment"] for s in TREATMENT] + [[s, "control"] for s in CONTROL]
    return (write(tmp_path / "READINGS.csv", "device,timestamp,wh", rows),
            write(tmp_path / "GROUPS.csv", "device,group", groups))


def reduction(site: str) -> int:
    """Baseline minus actual over the window: c * L - (c + shift - cut) * L."""
    _base, shift, cut = SITES[site]
    return (cut - shift) * EVENT_INTERVALS


def by_hand(method: str) -> tuple[int, tuple[int, int]]:
    """The documented estimate and 95 % interval (oracle.estimators), worked with Fractions."""
    r_t = [Fraction(reduction(s)) for s in TREATMENT]
    r_c = [Fraction(reduction(s)) for s in CONTROL]
    n_t, n_c = len(r_t), len(r_c)
    estimate = n_t * (statistics.mean(r_t) - statistics.mean(r_c))
    assert estimate.denominator == 1  # chosen so that no rounding rule is involved
    if method == "did":
        variance = statistics.variance(r_c) * n_t * (n_t + n_c) / n_c
        t_milli, t_exact = 2_571, 2.5706  # Student t 97.5 %, 5 degrees of freedom
    else:  # every site's pre-window covariate is 0 here: it has no spread and is dropped, so the control
        # fit is a flat line at mean_C and spends no degree of freedom on a slope
        residual = sum((r - statistics.mean(r_c)) ** 2 for r in r_c) / (n_c - 1)
        variance = residual * (n_t + Fraction(n_t * n_t, n_c))
        t_milli, t_exact = 2_571, 2.5706  # 5 degrees of freedom
    half = t_milli * math.isqrt(math.floor(variance)) // 1_000
    assert abs(half - t_exact * math.sqrt(variance)) <= 3  # the integer rule stays close to the exact one
    return int(estimate), (int(estimate) - half, int(estimate) + half)


def check_portfolio(out: dict, method: str) -> None:
    estimate, ci = by_hand(method)
    portfolio = out["portfolio"]
    assert portfolio["method"] == method and portfolio["rule"] == "portfolio", portfolio
    assert (portfolio["treatment"], portfolio["control"]) == (6, 6)
    assert portfolio["estimated_wh"] == estimate == 1_600
    assert portfolio["ci95_wh"] == list(ci)
    assert [d["device"] for d in out["devices"]] == sorted(SITES)  # meter-x (no group) left out
    for device in out["devices"]:
        base, shift, cut = SITES[device["device"]]
        assert device["group"] == ("treatment" if device["device"] in TREATMENT else "control")
        assert device["baseline_wh"] == [base] * EVENT_INTERVALS  # the weekday constant, weekends unused
        assert device["actual_wh"] == [base + shift - cut] * EVENT_INTERVALS
        assert device["estimated_wh"] == reduction(device["device"])
        assert device["included"] is True


@pytest.mark.parametrize("method", ["did", "regression"])
def test_portfolio_estimate_matches_the_hand_computation(tmp_path, caplog, method):
    readings, groups = portfolio_files(tmp_path)
    result = invoke(readings, groups, "--method", method)
    assert result.exit_code == 0, result.stderr
    assert "ignored: 'meter-x'" in caplog.text  # the device with no group is named in a warning
    check_portfolio(json.loads(result.stdout), method)


def test_site_method_is_the_treatment_sites_own_baselines(tmp_path):
    readings, groups = portfolio_files(tmp_path)
    result = invoke(readings, groups, "--method", "site")
    assert result.exit_code == 0, result.stderr
    portfolio = json.loads(result.stdout)["portfolio"]
    total = sum(reduction(s) for s in TREATMENT)
    # placebo days are perfect (constant loads), so the interval has no width
    assert (portfolio["estimated_wh"], portfolio["ci95_wh"]) == (total, [total, total])


def test_the_installed_command_prints_exactly_one_json_object(tmp_path):
    readings, groups = portfolio_files(tmp_path)
    command = [str(Path(sys.executable).with_name("negawatt")), "oracle", "verify",
               "--readings", str(readings), "--groups", str(groups), *WINDOW]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1
    assert "ignored: 'meter-x'" in done.stderr  # the warning goes to stderr, never to stdout
    check_portfolio(json.loads(lines[0]), "did")
    bad = write(tmp_path / "BAD.csv", "device,group", [["t1", "dispatched"]])
    done = subprocess.run([*command[:6], str(bad), *WINDOW], capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout) == (2, "")
    assert "BAD.csv: line 2:" in done.stderr and "unknown group 'dispatched'" in done.stderr
