"""Start a local Mosquitto broker (Debian's `mosquitto`) on a loopback port, for tests and devnets."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path


def mosquitto_binary() -> str:
    """The mosquitto executable (PATH, then /usr/sbin); RuntimeError if it is not installed."""
    found = shutil.which("mosquitto") or next((p for p in ("/usr/sbin/mosquitto",) if Path(p).exists()), None)
    if not found:
        raise RuntimeError("mosquitto is not installed: `make mosquitto` (Debian's mosquitto package)")
    return found


def start_broker(run_dir: Path, port: int, host: str = "127.0.0.1", timeout: float = 15.0) -> subprocess.Popen:
    """Start mosquitto listening on host:port with anonymous access; wait until it accepts connections."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run_dir / f"mosquitto-{port}.conf"
    config.write_text(f"listener {port} {host}\nallow_anonymous true\npersistence false\n")
    log_file = (run_dir / f"mosquitto-{port}.log").open("ab")
    process = subprocess.Popen([mosquitto_binary(), "-c", str(config)], stdout=log_file, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mosquitto exited with {process.returncode}; see {run_dir / f'mosquitto-{port}.log'}")
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return process
        time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"mosquitto did not listen on {host}:{port} within {timeout:g} s")
