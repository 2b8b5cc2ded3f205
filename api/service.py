"""Assembling the service from settings: database (migrated), chain connection, indexer, app."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from api.app import create_app
from api.context import make_context
from api.db import make_engine
from api.indexer import Indexer
from api.migrate import upgrade
from api.settings import ApiSettings
from protocol.chain import connect
from protocol.manifest import check_chain, load_manifest

log = logging.getLogger(__name__)
TEST_PAYMENT_TOKENS = ("MockStablecoin",)  # a deployment's test stablecoin, offered to buyers before any request


def build_app(settings: ApiSettings, with_indexer: bool = True) -> FastAPI:
    """Migrate the database, connect to the chain, and build the app (its indexer starts with it)."""
    manifest = load_manifest(settings.manifest)
    engine = make_engine(settings.database_url)
    upgrade(engine)
    indexer = None
    if with_indexer:
        web3 = connect(settings.rpc_url)
        check_chain(manifest, web3)
        indexer = Indexer(engine, web3, manifest, confirmations=settings.confirmations, log_range=settings.log_range,
                          undo_depth=settings.undo_depth, oracle_urls=settings.oracles,
                          oracle_timeout=settings.oracle_timeout)
    context = make_context(engine, manifest.chainId, indexer, siwe_domains=settings.siwe_domains,
                           ready_lag_blocks=settings.ready_lag_blocks, poll_seconds=settings.poll_seconds,
                           nonce_seconds=settings.nonce_seconds, session_seconds=settings.session_seconds,
                           ready_stale_seconds=settings.ready_stale_seconds,
                           registry=manifest.address("DeviceRegistry"),
                           stream_keepalive=settings.stream_keepalive_seconds)
    context.network = {"chainId": manifest.chainId, "rpcUrl": settings.browser_rpc_url(),
                       "contracts": {name: entry.address for name, entry in sorted(manifest.contracts.items())},
                       "paymentTokens": [manifest.contracts[name].address for name in TEST_PAYMENT_TOKENS
                                         if name in manifest.contracts]}
    log.info("negawatt API for chain %d (%s), database %s, oracles %s, SIWE domains %s", manifest.chainId,
             settings.manifest, engine.url.render_as_string(hide_password=True),
             settings.oracles or "from the OracleHub", ", ".join(settings.siwe_domains))
    return create_app(context, settings.rate_limit_per_second, settings.rate_limit_burst, settings.cors_origins,
                      max_body_bytes=settings.max_body_bytes, web_dir=settings.web_dir)
