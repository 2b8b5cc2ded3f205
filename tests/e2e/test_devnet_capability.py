"""A capability test on a `negawatt devnet up` nobody touches (3 nodes, 2 oracles, 2-of-2, the API):
`negawatt devnet test-capability` opens it, and from then on the roles do everything: each node
computes the draw for its site (here every site is drawn) and curtails its devices to 0 W for the
window without signing an offer, the oracles settle it deterministically (2 signatures over one
digest), the report finalizes, and every tested site's capability record is served, the same, by
each oracle and by the API."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from protocol.chain import connect
from protocol.manifest import load_manifest
from protocol.network_profile import read_profile

NEGAWATT = str(Path(sys.executable).parent / "negawatt")
UP = ["--nodes", "3", "--devices-per-node", "2", "--oracles", "2", "--threshold", "2", "--time-scale", "60",
      "--block-time", "1", "--capability-test-bps", "10000"]


def wait_until(predicate, timeout: float, what: str, up: subprocess.Popen, log: Path):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except (httpx.HTTPError, ValueError, KeyError):
            value = None
        if value:
            return value
        assert up.poll() is None, f"devnet up exited while waiting for {what}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{log.read_text()[-3000:]}"
        time.sleep(1)


def test_a_capability_test_is_dispatched_settled_and_its_records_served(tmp_path):
    run_dir = tmp_path / "run"
    log = tmp_path / "up.log"
    up = subprocess.Popen([NEGAWATT, "devnet", "up", *UP, "--run-dir", str(run_dir)], stdout=log.open("w"),
                          stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "devnet up" in log.read_text(), 300, "the devnet to come up", up, log)
        profile = read_profile(run_dir)
        web3 = connect(profile.rpc_url)
        manifest = load_manifest(profile.manifest)
        market, hub = manifest.contract(web3, "FlexMarket"), manifest.contract(web3, "OracleHub")
        opened = subprocess.run([NEGAWATT, "devnet", "test-capability", "--run-dir", str(run_dir), "--json"],
                                capture_output=True, text=True, timeout=120)
        assert opened.returncode == 0, opened.stderr
        test = json.loads(opened.stdout.strip().splitlines()[-1])
        request_id = test["requestId"]

        wait_until(lambda: market.events.RequestSettled().get_logs(from_block=manifest.start_block,
                                                                   argument_filters={"requestId": request_id}),
                   420, f"capability test {request_id} to settle", up, log)
        final = hub.events.ReportFinalized().get_logs(from_block=manifest.start_block)[0]
        submitted = hub.events.ReportSubmitted().get_logs(from_block=manifest.start_block)[0]
        assert len(submitted.args.signers) == 2  # both oracles signed the same digest: identical reports

        sites = [d["address"] for d in httpx.get(f"{profile.api_url}/v1/devices",
                                                 params={"kind": "site_meter"}).json()["items"]]
        assert len(sites) == 3
        # every node: its devices were tested, curtailed and restored, and it signed no commitment
        for folder in sorted((run_dir / "nodes").iterdir()):
            data = folder / "node-data"
            dispatch = sqlite3.connect(f"file:{data / 'dispatch.sqlite'}?mode=ro", uri=True)
            states = {s for (s,) in dispatch.execute("SELECT state FROM participations WHERE request_id = ?",
                                                     (request_id,))}
            decisions = {d for (d,) in dispatch.execute("SELECT decision FROM decisions WHERE request_id = ?",
                                                        (request_id,))}
            assert states == {"restored"} and {"capability_test", "tested", "applied", "restored"} <= decisions
            outbox = sqlite3.connect(f"file:{data / 'outbox.sqlite'}?mode=ro", uri=True)
            assert outbox.execute("SELECT COUNT(*) FROM commitments").fetchone() == (0,)

        # each oracle serves the same records, read from the final report
        urls = [u for u in hub.functions.oracles().call()[1]]

        def known_everywhere():  # each oracle marks the report final on its next tick after the chain does
            answers = [{s: httpx.get(f"{u}/v1/sites/{s}/capability").json() for s in sites} for u in urls]
            return answers if all(a["records"] for by_site in answers for a in by_site.values()) else None

        by_oracle = wait_until(known_everywhere, 60, "every oracle to know the final report", up, log)
        assert by_oracle[0] == by_oracle[1]
        records = {s: answer["records"] for s, answer in by_oracle[0].items()}
        assert all(len(r) == 1 and r[0]["requestId"] == request_id and r[0]["testedAt"] == test["start"]
                   for r in records.values()), records
        for site, answer in by_oracle[0].items():  # the cap: tested W once passed, else the probation
            record = answer["records"][0]
            assert answer["capW"] == (record["testedW"] if record["passed"] else answer["probationW"])

        # and the API serves them once it has the verified document of the final report
        def served():
            answers = {s: httpx.get(f"{profile.api_url}/v1/sites/{s}/capability").json() for s in sites}
            return answers if all(a["latest"] for a in answers.values()) else None

        answers = wait_until(served, 120, "the API to serve the records", up, log)
        for site in sites:
            assert answers[site]["latest"] == records[site][0]
            assert httpx.get(f"{profile.api_url}/v1/devices/{site}").json()["capability"] == records[site][0]
        assert final.args.epoch == 1

        down = subprocess.run([NEGAWATT, "devnet", "down", "--run-dir", str(run_dir)], capture_output=True,
                              text=True, timeout=120)
        assert down.returncode == 0, down.stderr
    finally:
        if up.poll() is None:
            up.terminate()
            up.wait(timeout=60)
        (tmp_path.parent / "capability-e2e-up.log").write_text(log.read_text() if log.exists() else "")
