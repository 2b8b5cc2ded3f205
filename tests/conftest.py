"""Fixtures shared by the role tests: a real local chain (anvil from node_modules) with the
negawatt contracts deployed by `ape run deploy`, reached over JSON-RPC with web3.py."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from negawatt.localchain import ANVIL_KEYS, REPO, deploy, free_port, start_anvil  # noqa: F401  (shared helpers)


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
