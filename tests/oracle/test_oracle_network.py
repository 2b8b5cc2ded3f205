"""A 2-of-3 oracle set settles a flexibility event end to end on anvil.

Three `negawatt oracle run` processes at their default log level (one is killed before settlement),
three devices of one owner with five days of signed history, one request; the test moves the chain's clock forward
(anvil evm_increaseTime) instead of waiting, and the oracles follow it (protocol.clock).

Expected amounts, by hand (interval 60 s, meter-before-after over the 2 intervals before the
event, 2 kW committed per device, readings 40 Wh per interval outside the event and 10 Wh in it):
  baseline = (40 + 40) // 2 = 40 Wh, curtailed = 40 - 10 = 30 Wh per interval
  cap = 2000 * 60 // 3600 = 33 Wh per interval; delivered = 2 * min(30, 33) = 60 Wh; committed = 66 Wh
  ratio = 60 * 10000 // 66 = 9090 bps -> factor 9090 (identity above 50%)
  payable = 66 * 9090 // 10000 = 59 Wh; payout = 59 * 200000 // 1000 = 11800 (mUSD base units)
  owner 80% = 9440, fee 2360; emission = 59 * 10**18 // 1000 = 59 * 10**15 NEGA base units.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from waiting import wait_for as poll

from protocol.chain import Transactor
from protocol.keys import write_keystore


def wait_for(predicate, timeout: float, what: str):
    """Poll every half second: the predicates here are HTTP and JSON-RPC calls to the live network."""
    return poll(predicate, timeout, what, step=0.5)

INTERVAL = 60
DEVICES = 3
OWNER_SHARE, FEE_SHARE, EMISSION, PAYOUT = 9_440, 2_360, 59 * 10**15, 11_800
PRICE, BUDGET, COMMITTED_W = 200_000, 10**9, 2_000
PASSWORD_ENV = "NEGAWATT_TEST_ORACLE_PASSWORD"
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def warp(ops, seconds: int) -> None:
    """Move the chain's clock forward by `seconds` and mine a block."""
    ops.web3.provider.make_request("evm_increaseTime", [seconds])
    ops.web3.provider.make_request("evm_mine", [])


def post(url: str, path: str, payload: dict) -> None:
    response = httpx.post(f"{url}{path}", json=payload, timeout=10)
    assert response.status_code in (200, 201), (url, path, response.text)


def start_oracle(config: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, PASSWORD_ENV: "pw-" + config.stem}
    # As the devnet runs them: at INFO, without --verbose (oracle.logs).
    return subprocess.Popen([str(Path(sys.executable).parent / "negawatt"), "oracle", "run", "--config", str(config)],
                            cwd=REPO, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/v1/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_two_of_three_oracles_settle_an_event(devnet_ops, tmp_path):
    ops = devnet_ops
    web3, manifest = ops.web3, ops.manifest
    abis = [entry.abi for entry in manifest.contracts.values()]
    admin = Transactor(web3, ops.devnet.keys[0], abis=abis)
    token, staking = manifest.contract(web3, "NegawattToken"), manifest.contract(web3, "Staking")
    hub, distributor = manifest.contract(web3, "OracleHub"), manifest.contract(web3, "RewardDistributor")

    # Three bonded oracles, threshold 2.
    admin.send(token.functions.grantRole(token.functions.MINTER_ROLE().call(), admin.address))
    oracle_keys = ops.devnet.keys[3:6]
    processes, urls, logs = [], [], []
    for i, key in enumerate(oracle_keys):
        oracle = Transactor(web3, key, abis=abis)
        admin.send(token.functions.mint(oracle.address, 10**18))
        oracle.send(token.functions.approve(staking.address, 10**18))
        oracle.send(staking.functions.stake(10**18))
        admin.send(hub.functions.addOracle(oracle.address))
        keystore = tmp_path / f"oracle{i}.json"
        write_keystore(keystore, key, f"pw-oracle{i}", kdf="pbkdf2")
        port = free_port()
        config = tmp_path / f"oracle{i}.toml"
        config.write_text(
            f'rpc_url = "{ops.devnet.rpc_url}"\nmanifest = "{ops.devnet.manifest_path}"\n'
            f'database_url = "sqlite:///{tmp_path}/oracle{i}.sqlite"\nkeystore = "{keystore}"\n'
            f'password_env = "{PASSWORD_ENV}"\nport = {port}\npoll_seconds = 0.5\ndata_grace_seconds = 5\n'
            f'stagger_seconds = 3\nmax_readings = 96\n\n[economics]\ninterval_seconds = {INTERVAL}\n'
            f'method = "meter-before-after"\nadjustment = "none"\nbefore_intervals = 2\nquality_days = 2\n'
        )
        urls.append(f"http://127.0.0.1:{port}")
        logs.append(tmp_path / f"oracle{i}.log")
        processes.append(start_oracle(config, logs[-1]))
    admin.send(hub.functions.setThreshold(2))
    try:
        for url, log in zip(urls, logs):
            wait_for(lambda: healthy(url), 60, f"oracle at {url} ({log.read_text()[-2000:]})")
        wait_for(lambda: all(hub.functions.oracles().call()[1]), 30, "oracles publishing their URLs")
        assert sorted(hub.functions.oracles().call()[1]) == sorted(urls)

        # Three devices with five days of history at 40 Wh per interval, sent to every oracle.
        devices = [ops.register(capacity_w=3_000, zone=1) for _ in range(DEVICES)]
        # The owner bonds what its commitments need: oracles count only covered commitments (M-4).
        ops.stake(ops.owner, staking.functions.requiredBond(DEVICES * 3_000).call())
        now = ops.chain_time()
        history_start = (now // INTERVAL - 5 * 1440) * INTERVAL
        history_end = (now // INTERVAL) * INTERVAL
        sequences = {d.address: 0 for d in devices}

        def send_readings(device, first: int, last: int, reading) -> None:
            for start in range(first, last, 96 * INTERVAL):
                count = min(96, (last - start) // INTERVAL)
                readings = [reading(start + k * INTERVAL) for k in range(count)]
                batch = ops.batch(device, start, readings, sequences[device.address], interval=INTERVAL)
                sequences[device.address] += 1
                for url in urls:
                    post(url, "/v1/meter-batches", ops.batch_payload(batch))

        for device in devices:
            send_readings(device, history_start, history_end, lambda t: 40)

        # A request two minutes long, starting in about two minutes; every device commits 2 kW.
        ops.buyer.send(ops.stablecoin.functions.mint(ops.buyer.address, BUDGET))
        ops.buyer.send(ops.stablecoin.functions.approve(ops.market.address, BUDGET))
        start = -(-(ops.chain_time() + 120) // INTERVAL) * INTERVAL
        end = start + 120
        ops.buyer.send(ops.market.functions.openRequest(1, start, end, 6_000, PRICE, ops.stablecoin.address, BUDGET))
        request_id = ops.market.functions.requestCount().call()
        for device in devices:
            commitment = ops.commitment(device, request_id, COMMITTED_W)
            for url in urls:
                post(url, "/v1/commitments", ops.commitment_payload(commitment))

        # Time passes (compressed): the event happens and the devices report it. The last readings
        # arrive within the oracles' clock-skew allowance before the window ends, so every oracle
        # holds all of them before any may settle (the window then ends, plus the data grace).
        warp(ops, end - 30 - ops.chain_time())
        time.sleep(1.5)  # the oracles' clocks re-read the chain every second
        for device in devices:
            send_readings(device, history_end, end, lambda t: 10 if start <= t < end else 40)
        warp(ops, end + 1 - ops.chain_time())

        # One oracle dies; the other two agree and submit.
        processes[0].kill()
        processes[0].wait(timeout=10)
        pending = wait_for(lambda: (lambda p: p if p[1] == 1 else None)(hub.functions.pendingReport().call()),
                           120, "a submitted report")
        signers = set(pending[3])
        assert len(signers) == 2 and Transactor(web3, oracle_keys[0]).address not in signers

        # The submitter crashes (kill -9) and restarts: it resumes from the chain and its database
        # and never submits a second report.
        submitted = hub.events.ReportSubmitted().get_logs(from_block=0)
        assert len(submitted) == 1
        addresses = [Transactor(web3, key).address for key in oracle_keys]
        crashed = addresses.index(submitted[0].args.submitter)
        processes[crashed].kill()
        processes[crashed].wait(timeout=10)
        restart_log = tmp_path / f"oracle{crashed}-restarted.log"
        processes[crashed] = start_oracle(tmp_path / f"oracle{crashed}.toml", restart_log)
        wait_for(lambda: healthy(urls[crashed]), 60, "the restarted oracle")
        warp(ops, 61)
        wait_for(lambda: hub.functions.currentEpoch().call() == 1, 60, "the report to be finalized")
        assert len(hub.events.ReportSubmitted().get_logs(from_block=0)) == 1
        assert "submitted report" not in restart_log.read_text()

        # The chain: request settled, escrow conserved, the root installed.
        settled = ops.market.functions.getRequest(request_id).call()
        assert settled[3] == 4  # Settled
        assert settled[11] == DEVICES * PAYOUT  # paid (after status and the allocated flag)
        assert ops.stablecoin.functions.balanceOf(ops.buyer.address).call() >= BUDGET - DEVICES * PAYOUT
        root = bytes(distributor.functions.root().call())

        # Both live oracles publish the same report, whose root is the on-chain one.
        # (each oracle marks the report final on its next step after the chain did: wait for both)
        def final_report(url: str):
            response = httpx.get(f"{url}/v1/reports/1", timeout=10)
            return response.json() if response.status_code == 200 else None

        published = [wait_for(lambda u=url: final_report(u), 30, f"{url} to publish epoch 1") for url in urls[1:]]
        assert published[0]["digest"] == published[1]["digest"]
        assert published[0]["rewardsRoot"] == "0x" + root.hex()
        devices_out = published[0]["requests"][0]["devices"]
        assert [(d["deliveredWh"], d["payableWh"], d["payout"]) for d in devices_out] == [(60, 59, str(PAYOUT))] * 3

        # The owner claims with the proof an oracle serves; the fee account's leaf holds the fees.
        usd = ops.stablecoin.address
        rewards = httpx.get(f"{urls[1]}/v1/rewards/{ops.owner.address}", timeout=10).json()
        amounts = {r["token"]: int(r["amount"]) for r in rewards["rewards"]}
        assert amounts == {usd: DEVICES * OWNER_SHARE, token.address: DEVICES * EMISSION}
        # ... and the node's claim code: proofs from the oracles, checked against the on-chain root.
        from node.claims import claim, claimable, fetch_rewards, worth_claiming

        fetched = fetch_rewards(urls, ops.owner.address, root)
        items = claimable(distributor, ops.owner.address, fetched)
        assert {i.token: i.unclaimed for i in items} == amounts
        worth, reason = worth_claiming(web3, distributor, ops.owner, ops.owner.address, items,
                                       {usd: 10**12, token.address: 1})
        assert worth, reason
        assert not worth_claiming(web3, distributor, ops.owner, ops.owner.address, items, {})[0]
        before = ops.stablecoin.functions.balanceOf(ops.owner.address).call()
        claim(ops.owner, distributor, ops.owner.address, items)
        assert ops.stablecoin.functions.balanceOf(ops.owner.address).call() - before == DEVICES * OWNER_SHARE
        assert token.functions.balanceOf(ops.owner.address).call() == DEVICES * EMISSION
        assert claimable(distributor, ops.owner.address, fetched) == []
        treasury = hub.functions.treasury().call()
        fees = httpx.get(f"{urls[2]}/v1/rewards/{treasury}", timeout=10).json()
        assert {r["token"]: int(r["amount"]) for r in fees["rewards"]}[usd] == DEVICES * FEE_SHARE
        assert token.functions.balanceOf(distributor.address).call() == 0  # the emission went to the owner

        # The logs: one line per decision, and not one line of web3's or httpx's chatter.
        texts = {path.name: path.read_text() for path in [*logs, restart_log]}
        for name, text in texts.items():
            noisy = [line for line in text.splitlines()
                     if len(line.split()) > 3 and line.split()[3].startswith(("web3", "httpx", "httpcore", "urllib3"))]
            assert noisy == [], (name, noisy[:5])
            assert " DEBUG " not in text, name
        for path in logs[1:]:
            assert texts[path.name].count("accepted commitment of") == DEVICES
        assert "submitted report" in texts[logs[crashed].name]
        assert any("signed report" in text for text in texts.values())
        assert any("proposing report" in text for text in texts.values())
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
