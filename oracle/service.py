"""`negawatt oracle run`: the oracle as one process.

It connects to the chain and its database, publishes its URL in the OracleHub (if it changed),
serves the ingest, attestation and publication routes over HTTP, and runs the attestation loop
in a background thread. Stopping it (Ctrl-C, SIGTERM) loses nothing: every acknowledged message
and every report is already committed to the database, and the loop reads the chain on restart.

One `OracleMetrics` is shared by the ingest, the attestation and the database (GET /metrics), and
one `Readiness` answers GET /v1/ready (database, chain RPC, follower lag, signing key loaded).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, replace

from fastapi import FastAPI

from oracle import db, meter_retention, meter_store
from oracle.allocation_api import add_allocation_routes
from oracle.baseline_rules_api import add_baseline_rules_route
from oracle.capability_api import add_capability_routes
from oracle.attestation import Attestor
from oracle.clearing_service import Clearer
from oracle.attestation_api import add_attestation_routes
from oracle.chain_view import ChainView
from oracle.config import OracleConfig
from oracle.ingest import IngestSettings, Ingestor
from oracle.ingest_api import create_ingest_app
from oracle.logs import IngestLog
from oracle.peer_sync_api import add_peer_sync_routes
from oracle.metrics import OracleMetrics
from oracle.readiness import Readiness
from protocol.chain import ChainError, Transactor, connect
from protocol.capability import CapabilityRules
from protocol.clock import ChainClock
from protocol.fast_verify import RegistryDomainVerifier
from protocol.keys import load_key, read_password
from protocol.manifest import check_chain, load_manifest

log = logging.getLogger("negawatt.oracle")


@dataclass
class OracleService:
    """The wired parts of one running oracle."""

    config: OracleConfig
    app: FastAPI
    attestor: Attestor
    chain_view: ChainView
    clearer: Clearer
    metrics: OracleMetrics
    ingest_log: IngestLog
    upkeep: meter_retention.StoreUpkeep


def build_service(config: OracleConfig) -> OracleService:
    """Connect everything the config names; raises (ManifestError, KeyError_, ChainError, ConfigError)."""
    manifest = load_manifest(config.manifest)
    web3 = connect(config.rpc_url)
    check_chain(manifest, web3)
    key = load_key(config.keystore, read_password(config.password_env, config.password_file))
    engine = db.make_engine(config.database_url)
    db.init_db(engine)
    meter_store.migrate_legacy(engine)
    view = ChainView(web3, manifest, engine, confirmations=config.confirmations)
    rules = IngestSettings(interval_seconds=config.economics.interval_seconds, max_readings=config.max_readings,
                           clock_skew_seconds=config.clock_skew_seconds,
                           reading_tolerance_bps=config.reading_tolerance_bps)
    ingestor = Ingestor(engine, view, RegistryDomainVerifier(manifest.chainId, manifest.address("DeviceRegistry")),
                        rules)
    clock = ChainClock(web3)
    hub = manifest.contract(web3, "OracleHub")
    economics = config.economics.build(fee_account=hub.functions.treasury().call(),
                                       protocol_token=manifest.address("NegawattToken"))
    economics = replace(economics, tests=CapabilityRules.from_parameters(manifest.parameters))  # capability tests
    attestor = Attestor(web3=web3, manifest=manifest, key=key, engine=engine, chain_view=view, ingestor=ingestor,
                        economics=economics, data_grace_seconds=config.data_grace_seconds,
                        stagger_seconds=config.stagger_seconds, block_meters=config.settlement_block_meters,
                        clock=clock)
    clearer = Clearer(web3=web3, manifest=manifest, key=key, engine=engine, chain_view=view, ingestor=ingestor,
                      sync_delay_seconds=config.clearing_delay_seconds, clock=clock)
    attestor.allocation_reader = clearer.settled_allocation
    ingestor.site_cap = clearer.cap_of_site  # an offer past its site's tested capability is refused
    metrics = OracleMetrics()
    attestor.metrics = metrics
    metrics.watch(report_counts=attestor.store.counts)
    readiness = Readiness(engine, config.rpc_url, view, confirmations=config.confirmations,
                          max_lag_blocks=config.ready_max_lag_blocks, require_key=True, key_address=attestor.address)
    ingest_log = IngestLog()
    app = create_ingest_app(ingestor, clock=clock, poll_seconds=None, metrics=metrics, readiness=readiness,
                            ingest_log=ingest_log)
    add_attestation_routes(app, attestor)
    add_allocation_routes(app, clearer)
    add_capability_routes(app, clearer)
    add_peer_sync_routes(app)
    add_baseline_rules_route(app, economics)
    upkeep = meter_retention.StoreUpkeep(engine, config.retention_days, every_seconds=config.upkeep_every_seconds,
                                         needed_day=lambda now: needed_day(view, attestor, now))
    return OracleService(config, app, attestor, view, clearer, metrics, ingest_log, upkeep)


def publish_url(service: OracleService) -> None:
    """Set this oracle's URL in the OracleHub when it differs from the configured public URL."""
    attestor = service.attestor
    hub = attestor.hub.functions
    if not hub.isOracle(attestor.address).call():
        log.warning("%s is not in the oracle set yet; it serves but cannot sign reports", attestor.address)
        return
    addresses, urls = hub.oracles().call()
    current = dict(zip(addresses, urls)).get(attestor.address)
    if current != service.config.public_url:
        Transactor(attestor.web3, attestor.key, abis=[attestor.manifest.contracts["OracleHub"].abi]).send(
            attestor.hub.functions.setOracleUrl(service.config.public_url))
        log.info("published %s as this oracle's URL", service.config.public_url)


def needed_day(view: ChainView, attestor: Attestor, now: int) -> int | None:
    """The first day an unsettled request still reads (oracle.meter_retention.first_needed_day), from
    a chain view synced now: a view that cannot sync raises, and then nothing is pruned."""
    view.sync()
    return meter_retention.first_needed_day(view.requests().values(), now, attestor.settlement_timeout())


def upkeep_step(service: OracleService) -> meter_retention.PruneResult | None:
    """The store's upkeep at the service's clock (runs once a day, see oracle.meter_retention);
    errors are logged, never raised, so a failed upkeep does not stop the attestation."""
    try:
        return service.upkeep.tick(int(service.attestor.clock()))
    except ChainError as error:
        log.warning("store upkeep postponed (the chain is needed to know the unsettled requests): %s", error)
    except db.DatabaseBusy as error:
        log.warning("store upkeep postponed: %s", error)
    except Exception:
        log.exception("store upkeep failed")
    return None


def attestation_loop(service: OracleService, stop: threading.Event) -> None:
    """Tick the attestation protocol every poll interval until `stop` is set, and the store's upkeep
    after it (`upkeep_step`: once a day); errors are logged."""
    last = None
    while not stop.is_set():
        try:
            service.clearer.tick()
            outcome = service.attestor.tick()
            service.metrics.outcome(outcome)
            if outcome != last:
                log.info("attestation: %s", outcome.value)
                last = outcome
        except ChainError as error:
            service.metrics.outcome("chain_error")
            log.warning("attestation step failed on-chain: %s", error)
        except db.DatabaseBusy as error:
            service.metrics.outcome("database_busy")
            log.warning("attestation step postponed: %s", error)
        except Exception:  # keep the service alive; the next tick starts from chain state again
            service.metrics.outcome("error")
            log.exception("attestation step failed")
        upkeep_step(service)
        service.ingest_log.flush(force=False)
        stop.wait(service.config.poll_seconds)
    service.ingest_log.flush()


def run(config: OracleConfig) -> None:
    """Run the oracle until interrupted."""
    from protocol.http_limits import limited_server

    service = build_service(config)
    service.chain_view.sync()
    publish_url(service)
    stop = threading.Event()
    worker = threading.Thread(target=attestation_loop, args=(service, stop), name="attestation", daemon=True)
    worker.start()
    log.info("oracle %s serving on %s:%d", service.attestor.address, config.host, config.port)
    try:
        limited_server(service.app, host=config.host, port=config.port, log_level="warning",
                       access_log=False, loop="uvloop").run()  # no line per request; uvloop's loop
    finally:
        stop.set()
        worker.join(timeout=30)


