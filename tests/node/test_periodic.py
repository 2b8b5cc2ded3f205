"""The node's task table (node.periodic): each task runs when due and not before, a wake-up runs a
task early, and a failing task is logged and retried without stopping the others."""

from __future__ import annotations

import logging
import threading

from node.periodic import PeriodicTask, Scheduler


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def test_each_task_runs_when_due_and_not_before():
    clock, runs = FakeClock(), []
    scheduler = Scheduler([PeriodicTask("every turn", 0, lambda: runs.append("turn")),
                           PeriodicTask("every 2 s", 2, lambda: runs.append("2s")),
                           PeriodicTask("every 60 s", 60, lambda: runs.append("60s"))], clock=clock)
    assert scheduler.run_due() == ["every turn", "every 2 s", "every 60 s"]  # all due at the start
    runs.clear()
    clock.now += 1.5
    assert scheduler.run_due() == ["every turn"]
    clock.now += 0.5
    assert scheduler.run_due() == ["every turn", "every 2 s"]  # 2 s after its last run
    clock.now += 57.5
    assert scheduler.run_due() == ["every turn", "every 2 s"]  # 59.5 s after the 60 s task's last run
    clock.now += 0.5
    assert scheduler.run_due() == ["every turn", "every 60 s"]
    assert runs == ["turn", "turn", "2s", "turn", "2s", "turn", "60s"]


def test_a_wake_up_runs_a_task_before_it_is_due_and_is_consumed():
    clock, wake, runs = FakeClock(), threading.Event(), []
    scheduler = Scheduler([PeriodicTask("requests", 2, lambda: runs.append(clock.now), wake=wake)], clock=clock)
    scheduler.run_due()
    clock.now += 0.5
    assert scheduler.run_due() == []
    wake.set()
    assert scheduler.run_due() == ["requests"] and not wake.is_set()
    clock.now += 0.1
    assert scheduler.run_due() == []  # the period counts from the woken run
    assert runs == [1_000.0, 1_000.5]


def test_a_failing_task_is_logged_retried_next_turn_and_does_not_stop_the_others(caplog):
    clock, runs, failures = FakeClock(), [], [2]

    def flaky() -> None:
        if failures[0]:
            failures[0] -= 1
            raise ConnectionError("chain unreachable")
        runs.append("flaky")

    scheduler = Scheduler([PeriodicTask("before", 0, lambda: runs.append("before")),
                           PeriodicTask("flaky", 60, flaky),
                           PeriodicTask("after", 0, lambda: runs.append("after"))], clock=clock)
    with caplog.at_level(logging.ERROR, logger="negawatt.node"):
        assert scheduler.run_due() == ["before", "after"]
        clock.now += 0.1
        assert scheduler.run_due() == ["before", "after"]  # still due: retried on the next turn
    failed = [r for r in caplog.records if "node task flaky failed" in r.getMessage()]
    assert len(failed) == 2 and failed[0].exc_info[0] is ConnectionError
    clock.now += 0.1
    assert scheduler.run_due() == ["before", "flaky", "after"]
    clock.now += 0.1
    assert scheduler.run_due() == ["before", "after"]  # succeeded: next due 60 s later
    assert runs.count("flaky") == 1


def test_run_turns_until_stopped():
    stop, turns = threading.Event(), []

    def count() -> None:
        turns.append(1)
        if len(turns) == 3:
            stop.set()

    Scheduler([PeriodicTask("count", 0, count)]).run(stop, turn_seconds=0.001)
    assert len(turns) == 3
