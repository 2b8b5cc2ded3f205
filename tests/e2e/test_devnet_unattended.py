"""A `negawatt devnet up` left alone: a buyer funds itself with `negawatt devnet fund`, opens one
one-hour request with the real `negawatt buyer open`, and from then on nobody sends a transaction.
The devnet's keeper mines blocks and runs the chain's clock fast (--time-scale), so the request's
gate closes, its window passes, the oracles settle it (RequestSettled) and the report finalizes
after the challenge window (ReportFinalized) by themselves. Then `negawatt devnet down`.

Every role is its own process; the test only reads the chain and the run folder once the request
is open (the buyer's nonce shows it sent nothing more)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from protocol.chain import connect
from protocol.manifest import load_manifest
from protocol.network_profile import read_profile

NEGAWATT = str(Path(sys.executable).parent / "negawatt")
TIME_SCALE = 60  # chain seconds per wall second: the hour-long request takes about a minute of wall time
# the smallest devnet that settles a request: 2 sites (one of them held out by the market's draw), one oracle
UP = ["--nodes", "2", "--devices-per-node", "2", "--oracles", "1", "--threshold", "1", "--no-api",
      "--time-scale", str(TIME_SCALE), "--block-time", "1"]


def wait_until(predicate, timeout: float, what: str, up: subprocess.Popen, log: Path):
    """Poll `predicate`; fail naming `what` (with the devnet's output) past `timeout` or if `up` exited."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert up.poll() is None, f"devnet up exited while waiting for {what}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}:\n{log.read_text()[-3000:]}"
        time.sleep(0.5)


def test_a_request_settles_and_finalizes_on_a_devnet_nobody_touches(tmp_path):
    run_dir = tmp_path / "run"
    log = tmp_path / "up.log"
    up = subprocess.Popen([NEGAWATT, "devnet", "up", *UP, "--run-dir", str(run_dir)], stdout=log.open("w"),
                          stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: "devnet up" in log.read_text(), 240, "the devnet to come up", up, log)
        profile = read_profile(run_dir)
        accounts = json.loads((run_dir / "accounts.json").read_text())
        assert (profile.confirmations, profile.time_scale, profile.block_time_seconds) == (0, TIME_SCALE, 1)
        assert accounts["buyer"]["address"] in log.read_text() and accounts["password"] in log.read_text()
        web3 = connect(profile.rpc_url)
        manifest = load_manifest(profile.manifest)
        market, hub = manifest.contract(web3, "FlexMarket"), manifest.contract(web3, "OracleHub")
        buyer = accounts["buyer"]["address"]

        funded = subprocess.run([NEGAWATT, "devnet", "fund", buyer, "--musd", "50", "--run-dir", str(run_dir)],
                                capture_output=True, text=True, timeout=60)
        assert funded.returncode == 0, funded.stderr
        assert "+50 mUSD" in funded.stdout

        # a one-hour window starting on a metering boundary, its gate (15 min before) a quarter of an hour on
        now = web3.eth.get_block("latest")["timestamp"]
        lead = market.functions.gateLeadSeconds().call()
        interval = profile.interval_seconds
        start = (now + lead + 900 + interval) // interval * interval
        end = start + 3_600
        env = {**os.environ, "NEGAWATT_BUYER_RPC_URL": profile.rpc_url, "NEGAWATT_BUYER_MANIFEST": str(profile.manifest),
               "NEGAWATT_BUYER_KEYSTORE": accounts["buyer"]["keystore"],
               accounts["buyer"]["password_env"]: accounts["password"]}
        opened = subprocess.run([NEGAWATT, "buyer", "open", "--zone", "1", "--start", str(start), "--end", str(end),
                                 "--target-kw", "2", "--max-price-per-kwh", "0.30", "--token", "MockStablecoin",
                                 "--budget", "1", "--json"], capture_output=True, text=True, env=env, timeout=120)
        assert opened.returncode == 0, opened.stderr
        request_id = int(json.loads(opened.stdout.strip().splitlines()[-1])["requestId"])
        nonce = web3.eth.get_transaction_count(buyer)
        window = hub.functions.challengeWindow().call()

        # From here on the test sends nothing: it only reads the chain.
        def settled():
            return market.events.RequestSettled().get_logs(from_block=manifest.start_block,
                                                           argument_filters={"requestId": request_id})

        # FlexMarket settles a request when its report finalizes, after the challenge window
        settlement = wait_until(settled, 240, f"request {request_id} to settle", up, log)[0]
        final = wait_until(lambda: hub.events.ReportFinalized().get_logs(from_block=manifest.start_block), 60,
                           "the report to finalize", up, log)[0]
        submitted = hub.events.ReportSubmitted().get_logs(from_block=manifest.start_block)[0]
        assert final.args.epoch == submitted.args.epoch == 1 and final.blockNumber == settlement.blockNumber
        submitted_at = web3.eth.get_block(submitted.blockNumber)["timestamp"]
        assert submitted_at >= end  # the report came after the window, on the chain's own clock
        assert web3.eth.get_block(final.blockNumber)["timestamp"] >= submitted_at + window
        assert market.functions.getRequest(request_id).call()[3] == 4  # Settled
        assert web3.eth.get_transaction_count(buyer) == nonce  # the buyer sent nothing more
        oracle_log = (run_dir / "logs" / "oracle-1.log").read_text()
        assert " DEBUG " not in oracle_log  # the devnet's oracles log at INFO

        down = subprocess.run([NEGAWATT, "devnet", "down", "--run-dir", str(run_dir)], capture_output=True,
                              text=True, timeout=120)
        assert down.returncode == 0, down.stderr
        assert up.wait(timeout=60) == 0, log.read_text()[-3000:]
    finally:
        if up.poll() is None:
            up.terminate()
            up.wait(timeout=60)
