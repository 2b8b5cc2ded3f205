"""`python -m bench oracle-service --sites N`: one real `negawatt oracle run` on anvil with N sites.

What it drives, in order (every message signed by its device key, every call over real HTTP):

1. anvil (`negawatt.localchain.start_anvil`) and `ape run deploy` (`negawatt.localchain.deploy`;
   no bond per kW, so the settlement's bond check passes for owners without a stake).
2. N sites registered through DeviceRegistry: each a SITE_METER `register` and a heat pump
   `registerAtSite`, each with the device key's EIP-712 permit, each site with its own owner.
   Method: impersonated owners' `eth_sendTransaction` in JSON-RPC batches with automine off, then
   `evm_mine` (bench/oracle_service_chain.py). `register_seconds` covers permits, sending, mining and
   the receipts' check.
3. The chain's clock is moved to just before day E (the event day, tomorrow 00:00 UTC); one oracle
   process starts (SQLite file, or PostgreSQL with `--store postgresql`, bench/oracle_service_pg.py)
   and its ChainView indexes the 2N devices before it serves (`oracle_start_seconds`).
4. A FlexMarket request is opened in the sites' zone for 17:00-19:00 of day E (fixed price: the
   market has no gate lead, so no clearing).
5. History: `--history-days` days before E, one day-long batch (96 readings) per meter and day, over
   HTTP through the bulk route, POST /v1/meter-batches/bulk (oracle.bulk_ingest_api: NDJSON uploads
   of `--bulk-batches` batches, a node's backlog path), on BULK_CONNECTIONS connections
   (`history_ingest_readings_per_s`, counted per item of the answers; `history_upload_p99_ms` is the
   latency of a whole upload). Then every device's commitment (`commitments_per_s`).
6. The chain's clock is moved past day E plus the live intervals; day E goes in as day-long batches
   (the devices curtail in the window; bulk route, counted in the history figures), then
   `--live-intervals` one-interval batches of every meter, one per request on the single route
   POST /v1/meter-batches (`ingest_batches_per_s`, `ingest_p50_ms`, `ingest_p99_ms`).
7. `store_bytes_per_reading`: the store's size on disk (SQLite: database file and WAL after a
   checkpoint; PostgreSQL: pg_total_relation_size of its tables) over the readings it accepted.
8. `peer_sync_seconds`: a fresh oracle store obtains day E of every meter from the running oracle
   (`_measure_peer_sync`, see its TODO), every signature verified by the ingest.
9. `settle_from_store_seconds` and its parts: the oracle's own `compute_epoch` over the request, in a
   process of its own reading the oracle's store (bench/oracle_service_settle.py).

Bodies are signed before each timed phase and sent by a raw asyncio HTTP/1.1 client with
`--connections` kept-alive connections (bench/oracle_service_http.py). Only 200/201 answers count as
ingested; anything else is counted by status and reason in `*_refused` (all 0 in a good run).
`per_site_seconds` divides each phase by N, for extrapolation. Progress goes to stderr (rich).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.oracle_service_data import DEVICE_CAPACITY_W, INTERVAL_SECONDS, BodyMaker, Fleet, make_fleet, readings_day
from bench.oracle_service_http import LoadResult, post_all, post_bulk
from negawatt.localchain import ANVIL_KEYS, deploy, free_port, open_funded_request, start_anvil
from protocol.units import SECONDS_PER_DAY

ZONE = 1
BULK_PATH = "/v1/meter-batches/bulk"
BULK_CONNECTIONS = 2  # uploads in flight: one is parsed and verified while the other is stored
PASSWORD_ENV = "NEGAWATT_BENCH_ORACLE_PASSWORD"
EVENT_HOURS = (17, 19)
PRICE_PER_KWH = 200_000  # 0.20 USD (6 decimals) per kWh
DEPLOY_PARAMS = {"min_duration": INTERVAL_SECONDS, "challenge_window": 60, "min_oracle_bond": 10**18,
                 "bond_per_kw": 0}
stderr = Console(stderr=True)


class BenchError(RuntimeError):
    """The bench could not run (a missing server, a process that did not start); the message says why."""


@dataclass
class OracleProcess:
    """One `negawatt oracle run` process of the bench."""

    config: Path
    url: str
    database_url: str
    popen: subprocess.Popen
    log: Path

    def peak_rss_mb(self) -> float:
        """The process's VmHWM (peak resident memory), MB."""
        for line in Path(f"/proc/{self.popen.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        """Terminate it (kill after 15 s)."""
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()


@contextmanager
def _bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=stderr, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda done: progress.update(task, completed=done)


def _negawatt() -> str:
    return str(Path(sys.executable).parent / "negawatt")


def _health(url: str) -> dict | None:
    import urllib.request

    try:
        with urllib.request.urlopen(f"{url}/v1/health", timeout=5) as response:
            return json.loads(response.read())
    except OSError:
        return None


def start_oracle(work: Path, name: str, rpc_url: str, manifest: Path, database_url: str, password: str,
                 devices: int, key: str = ANVIL_KEYS[2]) -> OracleProcess:
    """Write a keystore and config as the devnet does and start `negawatt oracle run`; returns once its
    ChainView knows `devices` devices."""
    from oracle.config import OracleConfig
    from protocol.config_files import file_model, write_toml
    from protocol.keys import write_keystore

    keystore = work / f"{name}.json"
    write_keystore(keystore, key, password, kdf="pbkdf2", iterations=1_000)
    port = free_port()
    config = write_toml(work / f"{name}.toml", file_model(OracleConfig, {
        "rpc_url": rpc_url, "manifest": str(manifest), "database_url": database_url, "keystore": str(keystore),
        "password_env": PASSWORD_ENV, "port": port, "max_readings": SECONDS_PER_DAY // INTERVAL_SECONDS,
        "economics": {"interval_seconds": INTERVAL_SECONDS, "method": "caiso-10in10", "min_days": 4,
                      "adjustment": "ratio", "estimator": "did"},
    }))
    log = work / f"{name}.log"
    popen = subprocess.Popen([_negawatt(), "oracle", "run", "--config", str(config)], cwd=work,
                             env={**os.environ, PASSWORD_ENV: password}, stdout=log.open("w"),
                             stderr=subprocess.STDOUT)
    oracle = OracleProcess(config, f"http://127.0.0.1:{port}", database_url, popen, log)
    deadline = time.monotonic() + 600 + devices / 200
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise BenchError(f"{name} exited with {popen.returncode}:\n{log.read_text()[-3000:]}")
        health = _health(oracle.url)
        if health is not None and (health.get("devices") or 0) >= devices:
            return oracle
        time.sleep(0.5)
    oracle.stop()
    raise BenchError(f"{name} did not serve {devices} devices in time; see {log}")


def store_bytes(database_url: str) -> int:
    """The store's size on disk (see the module docstring, step 7)."""
    if database_url.startswith("sqlite"):
        path = Path(database_url.split("///", 1)[1])
        with sqlite3.connect(path, timeout=60) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    from bench.oracle_service_pg import postgres_bytes

    return postgres_bytes(database_url)


def _post(url: str, path: str, bodies: list[bytes], connections: int, what: str) -> LoadResult:
    with _bar(what, len(bodies)) as advance:
        return post_all(url, path, bodies, connections, advance)


def _post_bulk(url: str, bodies: list[bytes], per_upload: int, what: str) -> LoadResult:
    with _bar(what, len(bodies)) as advance:
        return post_bulk(url, BULK_PATH, bodies, per_upload, BULK_CONNECTIONS, advance)


def _day_bodies(maker: BodyMaker, fleet: Fleet, day_start: int, sequence: int,
                event: tuple[int, int] | None = None) -> list[bytes]:
    readings = readings_day(len(fleet.sites), day_start, event)
    return list(maker.day_bodies(fleet.meters, day_start, readings, sequence))


def _measure_peer_sync(source_url: str, fresh_database_url: str, rpc_url: str, manifest_path: Path,
                       meters: list[str], day: tuple[int, int], now: int) -> dict[str, Any]:
    """A fresh oracle store obtains `day` of every meter from the oracle at `source_url`.

    Through `oracle.peer_sync.pull_range`, the path `Attestor.pull_missing_data` takes: pages of the
    peer's time range, every signature verified, stored by the fresh oracle's `Ingestor.accept_batches`
    (registry and rules checked, durable). `meters` are the ones the peer was given (for the count)."""
    import httpx

    from oracle import db
    from oracle.chain_view import ChainView
    from oracle.ingest import Ingestor, IngestSettings
    from protocol.chain import connect
    from protocol.fast_verify import RegistryDomainVerifier
    from protocol.manifest import load_manifest

    manifest = load_manifest(manifest_path)
    engine = db.make_engine(fresh_database_url)
    db.init_db(engine)
    began = time.perf_counter()
    view = ChainView(connect(rpc_url), manifest, engine)
    view.sync()
    view_seconds = time.perf_counter() - began
    ingestor = Ingestor(engine, view, RegistryDomainVerifier(manifest.chainId, manifest.address("DeviceRegistry")),
                        IngestSettings(interval_seconds=INTERVAL_SECONDS, max_readings=SECONDS_PER_DAY // INTERVAL_SECONDS))
    from oracle.peer_sync import pull_range

    began = time.perf_counter()
    with httpx.Client(timeout=120) as http:
        result = pull_range(engine, ingestor, source_url, day[0], day[1], http, clock=lambda: now)
    seconds = time.perf_counter() - began
    if not result.complete:
        raise BenchError(f"the peer sync stopped: {result.stopped}")
    return {"peer_sync_seconds": round(seconds, 3), "peer_sync_batches": result.stored,
            "peer_sync_refused": sum(result.refused.values()), "peer_sync_chain_view_seconds": round(view_seconds, 3),
            "peer_sync_method": "oracle.peer_sync.pull_range: GET /v1/meter-batches/range pages, bulk-verified, "
                                "stored through Ingestor.accept_batches"}


def _settle(config: Path, request_id: int) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-m", "bench.oracle_service_settle", "--config", str(config),
                          "--request-id", str(request_id)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    if out.returncode != 0:
        raise BenchError(f"the settlement from the store failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _refusals(result: LoadResult) -> dict[str, int]:
    return dict(sorted(result.refusals.items()))


def run(sites: int = 10_000, store: str = "sqlite", connections: int = 16, live_intervals: int = 2,
        history_days: int = 10, skip_peer_sync: bool = False, postgres_url: str | None = None,
        bulk_batches: int = 1_000) -> dict[str, Any]:
    """Run the scenario of the module docstring and return its figures."""
    from protocol.chain import Transactor, connect
    from protocol.manifest import load_manifest

    from bench.oracle_service_chain import Rpc, register_fleet
    from bench.oracle_service_data import PermitSigner

    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="negawatt-bench-oracle-service-"))
    phases: dict[str, float] = {}
    figures: dict[str, Any] = {"sites": sites, "meters": 2 * sites, "store": store, "connections": connections,
                               "history_days": history_days, "live_intervals": live_intervals,
                               "history_path": f"POST {BULK_PATH}", "history_batches_per_upload": bulk_batches}
    postgres = None
    finished = False
    oracle = None
    anvil = None
    try:
        if store == "postgresql":
            from bench.oracle_service_pg import NoPostgres, connect_postgres

            try:
                postgres = connect_postgres(postgres_url)
            except NoPostgres as error:
                raise BenchError(str(error)) from None
        stderr.log(f"anvil and deploy ({work})")
        port = free_port()
        anvil = start_anvil(port)
        rpc_url = f"http://127.0.0.1:{port}"
        manifest_path = work / "manifest.json"
        deploy(rpc_url, manifest_path, DEPLOY_PARAMS)
        manifest = load_manifest(manifest_path)
        registry = manifest.address("DeviceRegistry")
        rpc = Rpc(rpc_url)

        began = time.perf_counter()
        fleet = make_fleet(sites, seed=secrets.token_bytes(16))
        phases["keys"] = time.perf_counter() - began
        stderr.log(f"{sites} sites: keys in {phases['keys']:.1f} s; registering")
        began = time.perf_counter()
        with _bar("registering sites", sites) as advance:
            figures.update(register_fleet(rpc, fleet, registry, PermitSigner(manifest.chainId, registry), ZONE,
                                          lambda done, total: advance(done)))
        phases["register"] = figures["register_seconds"] = round(time.perf_counter() - began, 3)

        # The clock: history days end at E, where the chain's clock now stands (minus a margin).
        event_day = (rpc.chain_time() // SECONDS_PER_DAY + 1) * SECONDS_PER_DAY
        # A weekday, at least two minutes ahead: like-day baselines (CAISO 10-in-10) then find
        # enough weekdays in the history whatever day the bench runs.
        while event_day - rpc.chain_time() < 120 or time.gmtime(event_day).tm_wday >= 5:
            event_day += SECONDS_PER_DAY
        rpc.set_time(event_day - 30)

        database_url = f"sqlite:///{work / 'oracle-1.sqlite'}"
        if postgres is not None:
            database_url = postgres.database("bench_oracle_1")
        began = time.perf_counter()
        oracle = start_oracle(work, "oracle-1", rpc_url, manifest_path, database_url, secrets.token_hex(8), 2 * sites)
        phases["oracle_start"] = figures["oracle_start_seconds"] = round(time.perf_counter() - began, 3)
        stderr.log(f"oracle serving on {oracle.url} after {phases['oracle_start']:.1f} s")

        web3 = connect(rpc_url)
        buyer = Transactor(web3, ANVIL_KEYS[1], abis=[entry.abi for entry in manifest.contracts.values()])
        window = (event_day + EVENT_HOURS[0] * 3_600, event_day + EVENT_HOURS[1] * 3_600)
        target_w = sites * DEVICE_CAPACITY_W
        budget = target_w * (window[1] - window[0]) * PRICE_PER_KWH // 3_600_000
        request_id = open_funded_request(buyer, manifest.contract(web3, "MockStablecoin"),
                                         manifest.contract(web3, "FlexMarket"), ZONE, window[0], window[1], target_w,
                                         PRICE_PER_KWH, budget)
        figures["request_id"] = request_id

        maker = BodyMaker(manifest.chainId, registry)
        maker.check_batch(fleet.sites[0], event_day - SECONDS_PER_DAY, [1] * 96, 0)
        history = LoadResult()
        generation = 0.0
        for d in range(history_days):
            day_start = event_day - (history_days - d) * SECONDS_PER_DAY
            began = time.perf_counter()
            bodies = _day_bodies(maker, fleet, day_start, d)
            generation += time.perf_counter() - began
            history.merge(_post_bulk(oracle.url, bodies, bulk_batches, f"history day {d + 1}"))

        began = time.perf_counter()
        bodies = [maker.commitment(device, request_id, DEVICE_CAPACITY_W) for device in fleet.devices]
        generation += time.perf_counter() - began
        commitments = _post(oracle.url, "/v1/commitments", bodies, connections, "commitments")

        live_start = event_day + SECONDS_PER_DAY
        rpc.set_time(live_start + live_intervals * INTERVAL_SECONDS + 30)
        time.sleep(1.5)  # the oracle's ChainClock reads the chain's lead at most once a second
        began = time.perf_counter()
        bodies = _day_bodies(maker, fleet, event_day, history_days, window)
        generation += time.perf_counter() - began
        history.merge(_post_bulk(oracle.url, bodies, bulk_batches, "event day"))

        began = time.perf_counter()
        live_bodies = []
        live_readings = readings_day(sites, live_start)
        for interval in range(live_intervals):
            column = live_readings[:, interval].tolist()
            live_bodies += [maker.batch(meter, live_start + interval * INTERVAL_SECONDS, [column[row]],
                                        history_days + 1 + interval) for row, meter in enumerate(fleet.meters)]
        generation += time.perf_counter() - began
        live = _post(oracle.url, "/v1/meter-batches", live_bodies, connections, "live intervals")
        del live_bodies, bodies
        phases["generate"] = generation

        history_readings = history.ok * (SECONDS_PER_DAY // INTERVAL_SECONDS)
        figures.update({
            "ingest_batches_per_s": round(live.ok / live.seconds, 1) if live.seconds else 0.0,
            "ingest_p50_ms": round(live.percentile_ms(0.5), 1),
            "ingest_p99_ms": round(live.percentile_ms(0.99), 1),
            "ingest_batches": live.ok,
            "ingest_refused": _refusals(live),
            "history_ingest_readings_per_s": round(history_readings / history.seconds, 1) if history.seconds else 0.0,
            "history_ingest_batches_per_s": round(history.ok / history.seconds, 1) if history.seconds else 0.0,
            "history_upload_p99_ms": round(history.percentile_ms(0.99), 1),
            "history_refused": _refusals(history),
            "commitments_per_s": round(commitments.ok / commitments.seconds, 1) if commitments.seconds else 0.0,
            "commitments_p99_ms": round(commitments.percentile_ms(0.99), 1),
            "commitments_refused": _refusals(commitments),
        })
        phases["ingest_live"], phases["ingest_history"], phases["commitments"] = (
            live.seconds, history.seconds, commitments.seconds)

        readings = history_readings + live.ok
        size = store_bytes(database_url)
        figures.update({"store_bytes": size, "store_readings": readings, "store_readings_history": history_readings,
                        "store_readings_live": live.ok,
                        "store_bytes_per_reading": round(size / readings, 2) if readings else None})

        if not skip_peer_sync:
            fresh_url = f"sqlite:///{work / 'oracle-2.sqlite'}"
            if postgres is not None:
                fresh_url = postgres.database("bench_oracle_2")
            peer = _measure_peer_sync(oracle.url, fresh_url, rpc_url, manifest_path,
                                      [m.address for m in fleet.meters], (event_day, event_day + SECONDS_PER_DAY),
                                      rpc.chain_time())
            figures.update(peer)
            phases["peer_sync"] = peer["peer_sync_seconds"]

        stderr.log("settling the request from the store")
        settled = _settle(oracle.config, request_id)
        figures.update(settled)
        phases["settle"] = settled["settle_from_store_seconds"]
        figures["oracle_rss_peak_mb"] = round(oracle.peak_rss_mb(), 1)
        figures["per_site_seconds"] = {name: round(seconds / sites, 6) for name, seconds in phases.items()}
        figures["bench_seconds"] = round(time.perf_counter() - started, 1)
        finished = True
        return figures
    finally:
        if oracle is not None:
            oracle.stop()
        if anvil is not None:
            anvil.terminate()
            anvil.wait(timeout=10)
        if postgres is not None:
            postgres.stop()
        if finished:
            shutil.rmtree(work, ignore_errors=True)  # the store may be gigabytes; kept (with logs) on a failure
        else:
            stderr.log(f"the run failed; its files and the oracle's log are kept in {work}")
