"""Fixtures shared by the role tests: a real local chain (anvil from node_modules) with the
negawatt contracts deployed by `ape run deploy`, reached over JSON-RPC with web3.py."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# anvil's (and Ape's) default development mnemonic: "test test ... junk"; these are its first keys.
ANVIL_KEYS = [
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Devnet:
    """A running anvil with negawatt deployed on it."""

    rpc_url: str
    manifest_path: Path
    process: subprocess.Popen
    keys: list[str]

    def web3(self):
        from protocol.chain import connect

        return connect(self.rpc_url)

    def manifest(self):
        from protocol.manifest import load_manifest

        return load_manifest(self.manifest_path)


def start_anvil(port: int, block_time: float | None = None) -> subprocess.Popen:
    """Start anvil from node_modules on `port` and wait until it answers."""
    binary = shutil.which("anvil", path=str(REPO / "node_modules" / ".bin"))
    assert binary, "anvil is installed by `make setup` (npm ci)"
    args = [binary, "--port", str(port), "--silent"]
    if block_time:
        args += ["--block-time", str(block_time)]
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.05)
    process.kill()
    raise RuntimeError("anvil did not start")


def deploy(rpc_url: str, out: Path, params: dict | None = None) -> None:
    """`ape run deploy` against the anvil at `rpc_url`, writing the manifest to `out`."""
    args = [str(Path(sys.executable).parent / "ape"), "run", "deploy", "--network", "ethereum:local:foundry",
            "--out", str(out)]
    if params:
        params_file = out.with_suffix(".params.json")
        params_file.write_text(json.dumps(params))
        args += ["--params", str(params_file)]
    result = subprocess.run(args, cwd=REPO, env={**os.environ, "APE_FOUNDRY_HOST": rpc_url},
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        raise RuntimeError(f"ape run deploy failed:\n{result.stdout}\n{result.stderr}")


@pytest.fixture
def devnet_factory(tmp_path):
    """Start a fresh anvil + deployment per call (params override DeployParams); stopped at teardown."""
    started: list[Devnet] = []

    def make(params: dict | None = None, block_time: float | None = None) -> Devnet:
        port = free_port()
        process = start_anvil(port, block_time)
        url = f"http://127.0.0.1:{port}"
        out = tmp_path / f"manifest-{port}.json"
        try:
            deploy(url, out, params)
        except Exception:
            process.kill()
            raise
        net = Devnet(url, out, process, ANVIL_KEYS)
        started.append(net)
        return net

    yield make
    for net in started:
        net.process.terminate()
        try:
            net.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            net.process.kill()


@pytest.fixture
def devnet(devnet_factory):
    """A fresh anvil with negawatt deployed (default parameters, 60 s challenge window)."""
    return devnet_factory({"challenge_window": 60, "min_duration": 60, "min_oracle_bond": 10**18})


# ---------------------------------------------------------------- PostgreSQL


def postgres_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl (PATH first, then Debian's /usr/lib/postgresql/*/bin)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    return candidates[0].parent if candidates else None


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL server on loopback (initdb + pg_ctl), as a SQLAlchemy URL.

    `make test` sets NEGAWATT_REQUIRE_POSTGRES=1, so there a missing server is an error; elsewhere
    the PostgreSQL tests are skipped with the reason.
    """
    import getpass
    import tempfile

    bindir = postgres_binaries()
    if bindir is None:
        message = "PostgreSQL server binaries not found (apt-get install postgresql; make setup does it as root)"
        if os.environ.get("NEGAWATT_REQUIRE_POSTGRES") == "1":
            pytest.fail(message)
        pytest.skip(message)
    datadir = Path(tempfile.mkdtemp(prefix="negawatt-pg-", dir="/tmp"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(datadir, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    user = "postgres" if os.geteuid() == 0 else getpass.getuser()
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(datadir), "-U", user, "--auth=trust", "-E", "UTF8"],
                   check=True, capture_output=True)
    port = free_port()
    options = f"-p {port} -k {datadir} -c listen_addresses=127.0.0.1 -c fsync=on"
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(datadir), "-o", options, "-w", "-l",
                    str(datadir / "server.log"), "start"], check=True, capture_output=True)
    try:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=port, user=user, dbname="postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE negawatt")
        yield f"postgresql://{user}@127.0.0.1:{port}/negawatt"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(datadir), "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(datadir, ignore_errors=True)
