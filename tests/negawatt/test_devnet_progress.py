"""The devnet's long steps are never silent: a log gets lines, a terminal a bar."""

from __future__ import annotations

import io

from rich.console import Console

from negawatt.devnet.progress import StepProgress


def _log_console() -> tuple[Console, io.StringIO]:
    buffer = io.StringIO()
    return Console(file=buffer, force_terminal=False, width=120), buffer


def test_a_log_gets_a_line_at_start_every_fifth_and_none_twice():
    console, buffer = _log_console()
    with StepProgress(console, "delivering the history", 10, "batches") as progress:
        for done in (1, 2, 2, 3, 7, 10):
            progress.update(done)
    lines = buffer.getvalue().splitlines()
    assert lines[0] == "… delivering the history: 0 of 10 batches"
    # 10 % gets no line, 20 % does, a repeat does not, 30 % is below the next 40 %, 70 % does, the end is quiet
    assert [line.split(" (")[0] for line in lines[1:]] == ["… delivering the history: 2 of 10 batches",
                                                         "… delivering the history: 7 of 10 batches"]
    assert not any("stopped" in line for line in lines)


def test_a_step_that_ends_early_says_where_it_stopped():
    console, buffer = _log_console()
    progress = StepProgress(console, "nodes", 4)
    progress.update(1)
    progress.close()
    assert buffer.getvalue().splitlines()[-1] == "… nodes: stopped at 1 of 4"


def test_progress_never_goes_back_or_past_the_total():
    console, _ = _log_console()
    progress = StepProgress(console, "nodes", 4)
    progress.update(3)
    progress.update(1)
    assert progress.done == 3
    progress.update(9)
    assert progress.done == 4
    progress.close()


def test_a_terminal_gets_a_bar_and_no_lines():
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=120)
    with StepProgress(console, "nodes", 2) as progress:
        progress.update(2)
    assert "… nodes" not in buffer.getvalue()
