"""`negawatt api serve` as its own process on anvil, exactly as the devnet runs it: options and env,
migrations on start, readiness, SIGTERM stops it cleanly, a restart resumes from the last block;
`negawatt api migrate`; configuration errors are reported, not raised."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
from conftest import wait_for

from negawatt.localchain import free_port

NEGAWATT = str(Path(sys.executable).parent / "negawatt")
REPO = Path(__file__).resolve().parents[2]


def start(chain, database: Path, port: int, log: Path, *extra: str, env: dict | None = None) -> subprocess.Popen:
    args = [NEGAWATT, "api", "serve", "--manifest", str(chain.devnet.manifest_path), "--rpc-url",
            chain.devnet.rpc_url, "--port", str(port), "--confirmations", "0", "--poll-seconds", "0.2", *extra]
    return subprocess.Popen(args, cwd=REPO, env={**os.environ, "DATABASE_URL": f"sqlite:///{database}", **(env or {})},
                            stdout=log.open("w"), stderr=subprocess.STDOUT)


def ready(url: str):
    try:
        response = httpx.get(f"{url}/v1/ready", timeout=2)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def test_serve_stops_on_sigterm_and_resumes(chain, tmp_path):
    database, port = tmp_path / "api.sqlite", free_port()
    url = f"http://127.0.0.1:{port}"
    device = chain.register(zone=2)
    process = start(chain, database, port, tmp_path / "api-1.log", env={"NEGAWATT_API_READY_LAG_BLOCKS": "0"})
    try:
        body = wait_for(lambda: ready(url), 60, f"the API ({(tmp_path / 'api-1.log').read_text()[-2000:]})", 0.2)
        assert body["head_block"] == chain.head()
        wait_for(lambda: (ready(url) or {}).get("indexed_block") == chain.head(), 20, "indexed to head", 0.2)
        assert httpx.get(f"{url}/v1/devices/{device.address}").json()["zone"] == 2
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
    log = (tmp_path / "api-1.log").read_text()
    assert "indexer stopped" in log or "Shutting down" in log, log[-2000:]

    late = chain.register(zone=2)
    # an unreachable oracle given with --oracle does not stop the indexer or the service
    process = start(chain, database, port, tmp_path / "api-2.log", "--oracle", "http://127.0.0.1:9")
    try:
        wait_for(lambda: (ready(url) or {}).get("indexed_block") == chain.head(), 60, "the restarted API", 0.2)
        assert httpx.get(f"{url}/v1/devices/{late.address}").status_code == 200
        assert httpx.get(f"{url}/v1/zones/2/stats").json()["devices"] == 2
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
    restarted = (tmp_path / "api-2.log").read_text()
    assert "Running upgrade" not in restarted  # the schema was already current


def test_migrate_command_and_configuration_errors(tmp_path):
    database = tmp_path / "m.sqlite"
    done = subprocess.run([NEGAWATT, "api", "migrate", "--database-url", str(database)], cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and "revision head" in done.stdout
    missing = subprocess.run([NEGAWATT, "api", "serve", "--manifest", str(tmp_path / "none.json"),
                              "--database-url", str(database)], cwd=REPO, capture_output=True, text=True, timeout=60, check=False)
    assert missing.returncode == 2 and "no deployment manifest" in missing.stderr
    bad = subprocess.run([NEGAWATT, "api", "serve", "--port", "70000"], cwd=REPO, capture_output=True, text=True,
                         timeout=60, check=False)
    assert bad.returncode == 2 and "port" in bad.stderr
