"""Start a local Mosquitto broker (Debian's `mosquitto`) on a loopback port, for tests and devnets."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
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


def write_password_file(path: Path, users: dict[str, str]) -> Path:
    """A Mosquitto password file for `users` (name -> password): by `mosquitto_passwd` when installed,
    else in its PBKDF2-SHA512 format (`name:$7$<iterations>$<salt b64>$<hash b64>`)."""
    path = Path(path)
    path.unlink(missing_ok=True)
    tool = shutil.which("mosquitto_passwd") or next((p for p in ("/usr/bin/mosquitto_passwd",) if Path(p).exists()),
                                                     None)
    if tool:
        path.touch()
        for name, password in users.items():
            subprocess.run([tool, "-b", str(path), name, password], check=True, capture_output=True)
        return path
    return write_password_file_pbkdf2(path, users)


def write_password_file_pbkdf2(path: Path, users: dict[str, str], iterations: int = 101) -> Path:
    """A Mosquitto (2.0) password file written without `mosquitto_passwd`: PBKDF2-SHA512, 12-byte salts."""
    lines = []
    for name, password in users.items():
        if ":" in name:
            raise ValueError("a Mosquitto user name has no ':'")
        salt = secrets.token_bytes(12)
        digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
        lines.append(f"{name}:$7${iterations}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}")
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)


def start_broker(run_dir: Path, port: int, host: str = "127.0.0.1", timeout: float = 15.0, *,
                 tls: tuple[Path, Path, Path] | None = None, password_file: Path | None = None,
                 require_certificate: bool = False) -> subprocess.Popen:
    """Start mosquitto listening on host:port; wait until it accepts connections.

    Anonymous and plain by default. `tls` = (CA file, server certificate, server key) makes the
    listener TLS 1.2+ only (`require_certificate`: clients must present a certificate signed by the
    CA); `password_file` (see write_password_file) turns anonymous access off."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = run_dir / f"mosquitto-{port}.conf"
    lines = [f"listener {port} {host}", "persistence false"]
    if password_file is not None:
        lines += ["allow_anonymous false", f"password_file {password_file}"]
    else:
        lines.append("allow_anonymous true")
    if tls is not None:
        ca_file, cert_file, key_file = tls
        lines += [f"cafile {ca_file}", f"certfile {cert_file}", f"keyfile {key_file}", "tls_version tlsv1.2",
                  f"require_certificate {'true' if require_certificate else 'false'}"]
    if (tls is not None or password_file is not None) and os.geteuid() == 0:
        lines.append("user root")  # else it drops to `mosquitto` first and cannot read the caller's private folder
    config.write_text("\n".join(lines) + "\n")
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
