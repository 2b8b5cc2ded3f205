"""The devnet's processes: each role runs as its own OS process with its log in the run folder.

The group records every process it starts in `<run>/processes.json` (name, pid, command, log), so
`negawatt devnet down` can stop a devnet started by another terminal; stopping sends SIGTERM to all,
waits, and SIGKILLs what is left.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("negawatt.devnet")
STATE_FILE = "processes.json"


@dataclass
class ManagedProcess:
    """One role's process and where its output goes."""

    name: str
    args: list[str]
    log_path: Path
    env: dict[str, str]
    popen: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, chars: int = 3_000) -> str:
        """The end of the process's log, for error messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return ""


class ProcessGroup:
    """Start, restart, kill and stop the devnet's processes."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.processes: dict[str, ManagedProcess] = {}
        (run_dir / "logs").mkdir(parents=True, exist_ok=True)

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
              ) -> ManagedProcess:
        """Start `args` as process `name` (a restart appends to the same log)."""
        process = self.processes.get(name) or ManagedProcess(name, args, self.run_dir / "logs" / f"{name}.log",
                                                             {**os.environ, **(env or {})})
        with process.log_path.open("a") as out:
            process.popen = subprocess.Popen(process.args, env=process.env, stdout=out, stderr=subprocess.STDOUT,
                                             cwd=cwd, start_new_session=True)
        self.processes[name] = process
        self._save()
        log.info("started %s (pid %d), log %s", name, process.pid, process.log_path)
        return process

    def adopt(self, name: str, popen: subprocess.Popen, log_path: Path) -> ManagedProcess:
        """Take over a process someone else started (stopped, listed and watched like the others)."""
        process = ManagedProcess(name, list(popen.args) if isinstance(popen.args, (list, tuple)) else [str(popen.args)],
                                 log_path, dict(os.environ), popen)
        self.processes[name] = process
        self._save()
        return process

    def restart(self, name: str) -> ManagedProcess:
        """Start process `name` again with the same command (after it died or was killed)."""
        process = self.processes[name]
        if process.alive():
            raise RuntimeError(f"{name} is still running")
        return self.start(name, process.args)

    def kill(self, name: str) -> None:
        """SIGKILL process `name` (a crash, for fault tests) and reap it."""
        process = self.processes[name]
        if process.popen and process.alive():
            process.popen.kill()
            process.popen.wait(timeout=10)

    def dead(self) -> list[ManagedProcess]:
        """Processes that exited although nobody stopped them."""
        return [p for p in self.processes.values() if p.popen is not None and not p.alive()]

    def stop_all(self, timeout: float = 15.0) -> None:
        """SIGTERM the services and nodes, wait, SIGKILL stragglers; then the same for the chain."""
        services = [p for p in self.processes.values() if p.name != "anvil"]
        chain = [p for p in self.processes.values() if p.name == "anvil"]
        for wave in (services, chain):
            for process in wave:
                if process.alive():
                    process.popen.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + timeout
            for process in wave:
                if process.popen is None:
                    continue
                try:
                    process.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.warning("%s did not stop in time; killing it", process.name)
                    process.popen.kill()
                    process.popen.wait(timeout=10)
        (self.run_dir / STATE_FILE).unlink(missing_ok=True)

    def _save(self) -> None:
        state = [{"name": p.name, "pid": p.pid, "args": p.args, "log": str(p.log_path)}
                 for p in self.processes.values() if p.alive()]
        (self.run_dir / STATE_FILE).write_text(json.dumps(state, indent=2))


ORCHESTRATOR_FILE = "devnet.pid"


def stop_recorded(run_dir: Path, timeout: float = 15.0) -> list[str]:
    """Stop the devnet of `run_dir` (for `negawatt devnet down`); returns the names of its processes.

    The `negawatt devnet up` process that owns the devnet is asked first (SIGTERM), so it stops its
    processes in order and exits cleanly; whatever it leaves (or if it is gone) is stopped here."""
    path = run_dir / STATE_FILE
    if not path.exists():
        return []
    try:
        entries = json.loads(path.read_text())
        names = [str(e.get("name")) for e in entries]
    except (json.JSONDecodeError, AttributeError, TypeError) as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from None
    orchestrator = run_dir / ORCHESTRATOR_FILE
    if orchestrator.exists():
        try:
            os.kill(int(orchestrator.read_text().strip()), signal.SIGTERM)
            deadline = time.monotonic() + timeout + 15
            while path.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
            if not path.exists():
                return names
        except (ValueError, ProcessLookupError):
            pass
    stopped = []
    for entry in sorted(entries, key=lambda e: e.get("name") == "anvil"):
        pid = entry.get("pid")
        if not isinstance(pid, int):
            continue
        try:
            os.kill(pid, signal.SIGTERM)
            stopped.append(str(entry.get("name")))
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + timeout
    for entry in entries:
        pid = entry.get("pid")
        while isinstance(pid, int) and time.monotonic() < deadline:
            try:
                os.waitpid(pid, os.WNOHANG)  # reaps it if it is our own child (else ChildProcessError)
            except ChildProcessError:
                pass
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            if isinstance(pid, int):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    path.unlink(missing_ok=True)
    return stopped
