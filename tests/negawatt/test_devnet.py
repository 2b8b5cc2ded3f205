"""`negawatt devnet`: its options are validated with clear errors, its plan gives every zone every
device kind, and `devnet down` stops what a devnet recorded (real processes, real signals)."""

from __future__ import annotations

import collections
import json
import os
import sys
import time

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from negawatt.cli import app
from negawatt.devnet.network import DAY, DEFAULT_KINDS, Devnet, DevnetSpec
from negawatt.devnet.processes import ProcessGroup, stop_recorded

runner = CliRunner()


@pytest.mark.parametrize("args, message", [
    (["--oracles", "3", "--threshold", "4"], "threshold (4) exceeds the number of oracles (3)"),
    (["--nodes", "1", "--zones", "2"], "1 node(s) cannot fill 2 zones"),
    (["--nodes", "0"], "--nodes"),
])
def test_bad_options_get_clear_errors(args, message, tmp_path):
    result = runner.invoke(app, ["devnet", "demo", "--run-dir", str(tmp_path / "run"), *args])
    assert result.exit_code == 2
    assert message in result.stderr
    assert not (tmp_path / "run" / "processes.json").exists()


def test_a_run_folder_with_a_running_devnet_is_refused(tmp_path):
    (tmp_path / "processes.json").write_text("[]")
    result = runner.invoke(app, ["devnet", "up", "--run-dir", str(tmp_path)])
    assert result.exit_code == 2 and "holds a running devnet" in result.stderr


def test_down_needs_an_existing_folder_and_valid_state(tmp_path):
    result = runner.invoke(app, ["devnet", "down", "--run-dir", str(tmp_path / "missing")])
    assert result.exit_code == 2 and "is not a folder" in result.stderr
    (tmp_path / "processes.json").write_text("{not json")
    result = runner.invoke(app, ["devnet", "down", "--run-dir", str(tmp_path)])
    assert result.exit_code == 2 and "not valid JSON" in result.stderr


def test_every_zone_gets_every_kind_and_the_event_is_in_the_evening(tmp_path):
    net = Devnet(DevnetSpec(zones=2), tmp_path)
    plan = collections.Counter((net.zone_of(i), kind) for i in range(net.spec.nodes) for kind in net.device_plan(i))
    assert set(plan) == {(zone, kind) for zone in (1, 2) for kind in DEFAULT_KINDS}  # the household: in the site meter
    assert sum(plan.values()) == 60
    wall = 1_795_000_000.0
    net.plan_times(wall)
    assert net.event_start % DAY == 18 * 3_600 and net.event_start >= wall + 2 * 3_600
    assert net.event_start - wall <= DAY + 2 * 3_600
    assert net.history_end == net.event_start - 3_600


def test_unknown_kinds_are_refused():
    with pytest.raises(ValidationError, match="unknown device kinds"):
        DevnetSpec(kinds=["toaster"])


def test_down_stops_the_recorded_processes(tmp_path):
    group = ProcessGroup(tmp_path)
    sleeper = [sys.executable, "-c", "import time; time.sleep(600)"]
    first, second = group.start("node-01", sleeper), group.start("oracle-1", sleeper)
    recorded = json.loads((tmp_path / "processes.json").read_text())
    assert {entry["name"] for entry in recorded} == {"node-01", "oracle-1"}
    result = runner.invoke(app, ["devnet", "down", "--run-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "stopped 2 process(es)" in result.stdout
    for process in (first, second):  # gone (stop_recorded reaped them: they were children of this test)
        with pytest.raises(ProcessLookupError):
            os.kill(process.pid, 0)
    assert not (tmp_path / "processes.json").exists()
    assert stop_recorded(tmp_path) == []


def test_stop_all_kills_what_ignores_sigterm(tmp_path):
    group = ProcessGroup(tmp_path)
    stubborn = group.start("node-01", [sys.executable, "-c",
                                       "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                                       "print('ready', flush=True); time.sleep(600)"])
    deadline = time.monotonic() + 10
    while "ready" not in stubborn.log_tail() and time.monotonic() < deadline:
        time.sleep(0.05)
    group.stop_all(timeout=1)
    assert stubborn.popen.returncode == -9
