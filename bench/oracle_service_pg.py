"""PostgreSQL for `python -m bench oracle-service --store postgresql`: a given server, or a throwaway one.

The rule: the bench measures a real server. With `--postgres-url` (or NEGAWATT_BENCH_POSTGRES_URL)
it uses that server and creates one database per oracle in it; otherwise it starts a throwaway
server on loopback as the test suite's `postgres_url` fixture does (initdb with trust auth, pg_ctl
with fsync on, as the postgres user when run as root). Without a URL and without server binaries
it raises `NoPostgres`, which the command reports before exiting non-zero.
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from negawatt.localchain import free_port


class NoPostgres(RuntimeError):
    """No PostgreSQL server can be reached or started."""


def _binaries() -> Path | None:
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).resolve().parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), reverse=True)
    return candidates[0].parent if candidates else None


@dataclass
class Postgres:
    """A PostgreSQL server the bench may create databases in (stopped by `stop` if it started it)."""

    url: str  # postgresql://user@host:port/postgres
    datadir: Path | None = None
    as_user: list[str] = field(default_factory=list)
    bindir: Path | None = None

    def database(self, name: str) -> str:
        """Create database `name` (dropping an old one) and return its URL."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url.rsplit("/", 1)[0] + f"/{name}"

    def stop(self) -> None:
        """Stop and remove a throwaway server (a given server is left as it is)."""
        if self.datadir is None or self.bindir is None:
            return
        subprocess.run([*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(self.datadir, ignore_errors=True)


def connect_postgres(url: str | None) -> Postgres:
    """The server at `url` (checked with a connection), or a throwaway one; raises NoPostgres."""
    url = url or os.environ.get("NEGAWATT_BENCH_POSTGRES_URL")
    if url:
        import psycopg

        admin = url.rsplit("/", 1)[0] + "/postgres"
        try:
            psycopg.connect(admin, connect_timeout=5).close()
        except psycopg.Error as error:
            raise NoPostgres(f"PostgreSQL at {url.split('@')[-1]} does not answer: {error}") from None
        return Postgres(admin)
    bindir = _binaries()
    if bindir is None:
        raise NoPostgres("no PostgreSQL server: give --postgres-url (or NEGAWATT_BENCH_POSTGRES_URL), or install "
                         "the server binaries (initdb, pg_ctl) so the bench starts a throwaway one")
    datadir = Path(tempfile.mkdtemp(prefix="negawatt-bench-pg-", dir="/tmp"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        shutil.chown(datadir, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    user = "postgres" if os.geteuid() == 0 else getpass.getuser()
    try:
        subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(datadir), "-U", user, "--auth=trust", "-E",
                        "UTF8"], check=True, capture_output=True)
        port = free_port()
        options = f"-p {port} -k {datadir} -c listen_addresses=127.0.0.1 -c fsync=on"
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(datadir), "-o", options, "-w", "-l",
                        str(datadir / "server.log"), "start"], check=True, capture_output=True)
    except subprocess.CalledProcessError as error:
        shutil.rmtree(datadir, ignore_errors=True)
        raise NoPostgres(f"could not start a throwaway PostgreSQL: {error.stderr.decode(errors='replace')}") from None
    return Postgres(f"postgresql://{user}@127.0.0.1:{port}/postgres", datadir, as_user, bindir)


def postgres_bytes(url: str) -> int:
    """pg_total_relation_size summed over the tables of the public schema (data, indexes, TOAST)."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        row = conn.execute("SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
                           "JOIN pg_namespace n ON n.oid = c.relnamespace "
                           "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')").fetchone()
    return int(row[0])
