"""The facade's FastAPI app: OpenADR 3.1.0 routes over the store, the market and the site gateway.

`build_context` opens everything the settings name (the clients file and its keystores, the SQL
store, the chain and the payment token, the oracles' URLs: the settings', else the OracleHub's);
`create_app` serves a context: body cap (protocol.http_limits, 413 problem), problems for every
error (vtn.problems), the result refresher running while the app runs.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator

from fastapi import FastAPI

from protocol.http_limits import BodyLimitMiddleware
from vtn import routes_auth, routes_events, routes_programs, routes_reports, routes_subscriptions, routes_vens
from vtn.callback_policy import CallbackPolicy
from vtn.clients import Registry, load_registry
from vtn.deps import VtnContext
from vtn.notify import Notifier
from vtn.problems import install_problem_handlers
from vtn.results import Results
from vtn.settings import SPEC_VERSION, VtnSettings
from vtn.sites import SiteGateway
from vtn.store import Store, make_engine
from vtn.tokens import TokenStore

log = logging.getLogger(__name__)


def _password(settings: VtnSettings) -> str:
    if settings.keystore_password is not None:
        return settings.keystore_password
    if settings.keystore_password_file is not None:
        return settings.keystore_password_file.read_text().strip()
    return ""


def _hub_oracles(web3: Any, manifest: Any) -> list[str]:
    try:
        _, urls = manifest.contract(web3, "OracleHub").functions.oracles().call()
    except Exception:  # an older hub without the getter: no oracles from the chain
        return []
    return [url for url in urls if url]


def build_context(settings: VtnSettings, registry: Registry | None = None, market: Any = None) -> VtnContext:
    """Open the clients file, the store, the chain and the token; `market` and `registry` may be given."""
    registry = registry or load_registry(settings.clients_file, _password(settings))
    store = Store(make_engine(settings.database_url))
    if market is None:
        from protocol.chain import connect
        from protocol.manifest import check_chain, load_manifest
        from vtn.market import Market

        manifest = load_manifest(settings.manifest)
        web3 = connect(settings.rpc_url)
        check_chain(manifest, web3)
        market = Market(web3, manifest, settings.payment_token)
    oracles = settings.oracles or _hub_oracles(market.web3, market.manifest)
    sites = SiteGateway(store, registry.site_keys, market.manifest.chainId, market.manifest.address("DeviceRegistry"),
                        oracles)
    notifier = Notifier(settings.notify_timeout_seconds, policy=CallbackPolicy(settings.callback_allow))
    context = VtnContext(settings, store, registry, TokenStore(settings.token_ttl_seconds), notifier, market, sites)
    context.results = Results(store, market, notifier, settings.api_url)
    notifier.context = context
    return context


def create_app(context: VtnContext) -> FastAPI:
    """The facade's app around `context`."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        context.results.start(context.settings.poll_seconds)
        log.info("OpenADR %s VTN facade at %s (%d clients, %d site keys, %d oracles)", SPEC_VERSION,
                 context.settings.base_url(), len(context.registry.clients), len(context.registry.site_keys),
                 len(context.sites.oracles))
        yield
        context.results.stop()
        context.notifier.close()
        context.sites.close()

    app = FastAPI(title="negawatt OpenADR VTN facade", version=SPEC_VERSION, lifespan=lifespan,
                  description=f"OpenADR {SPEC_VERSION} VTN: Business Logic events become FlexMarket requests, "
                              "VEN usage reports become signed meter batches.")
    app.state.vtn = context
    install_problem_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=context.settings.max_body_bytes)
    for module in (routes_auth, routes_programs, routes_events, routes_reports, routes_vens, routes_subscriptions):
        app.include_router(module.router)
    return app
