"""`negawatt api serve` and `negawatt api migrate`. Every option can also be set as NEGAWATT_API_<NAME>
(and the database as DATABASE_URL); options given on the command line win."""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer


def _server_class():
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """uvicorn's server, except that a SIGTERM/SIGINT that ended in a clean shutdown exits with status 0
        (uvicorn re-raises the signal afterwards, which makes supervisors see a kill)."""

        @contextmanager
        def capture_signals(self):
            with super().capture_signals():
                try:
                    yield
                finally:
                    self._captured_signals.clear()

    return GracefulServer


api_app = typer.Typer(help="The dApp API: chain indexer and REST/SSE service.", no_args_is_help=True)


def _settings(**options: Any):
    from pydantic import ValidationError

    from api.settings import ApiSettings

    given = {name: value for name, value in options.items() if value is not None and value != []}
    try:
        return ApiSettings(**given)
    except ValidationError as error:
        typer.secho(f"error: invalid configuration:\n{error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None


@api_app.command("serve")
def serve(
    manifest: Path | None = typer.Option(None, "--manifest", help="deployment manifest [NEGAWATT_API_MANIFEST]"),
    rpc_url: str | None = typer.Option(None, "--rpc-url", help="JSON-RPC URL [NEGAWATT_API_RPC_URL]"),
    database_url: str | None = typer.Option(None, "--database-url",
                                               help="SQLite path/URL or postgresql:// [DATABASE_URL]"),
    host: str | None = typer.Option(None, "--host", help="listen address (default 127.0.0.1)"),
    port: int | None = typer.Option(None, "--port", help="listen port (default 8000)"),
    confirmations: int | None = typer.Option(None, "--confirmations", help="blocks behind head (default 2)"),
    oracle: list[str] | None = typer.Option(None, "--oracle", help="oracle base URL (repeatable); default: "
                                                                      "the OracleHub's registered URLs"),
    poll_seconds: float | None = typer.Option(None, "--poll-seconds", help="indexer poll interval (default 2)"),
    public_url: str | None = typer.Option(None, "--public-url", help="URL clients reach this API at; SIWE "
                                          "messages must name its host[:port] (default http://<host>:<port>)"),
    public_rpc_url: str | None = typer.Option(None, "--public-rpc-url", help="JSON-RPC URL the web app's browsers "
                                              "use (default: --rpc-url when it is on loopback, else none)"),
    web_dir: Path | None = typer.Option(None, "--web-dir", help="the built web app served at / (default: web/dist)"),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="debug logging"),
) -> None:
    """Migrate the database, follow the chain and the oracles, and serve the REST API and the web app."""
    from api.indexer import MirrorMismatch
    from api.service import build_app

    GracefulServer = _server_class()
    from protocol.chain import ChainError
    from protocol.http_limits import limited_server
    from protocol.manifest import ManifestError

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings(manifest=manifest, rpc_url=rpc_url, database_url=database_url, host=host, port=port,
                         confirmations=confirmations, oracles=oracle, poll_seconds=poll_seconds, public_url=public_url,
                         public_rpc_url=public_rpc_url, web_dir=web_dir)
    try:
        app = build_app(settings)
    except (ManifestError, ChainError, MirrorMismatch) as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    # the request-head timeout, keep-alive and connection limit of protocol.http_limits (the body cap is the app's)
    limited_server(app, settings.http_limits(), server_class=GracefulServer, http="httptools", host=settings.host,
                   port=settings.port, loop="uvloop", log_level="debug" if verbose else "info", access_log=verbose,
                   timeout_graceful_shutdown=5).run()


@api_app.command("migrate")
def migrate(
    database_url: str | None = typer.Option(None, "--database-url",
                                               help="SQLite path/URL or postgresql:// [DATABASE_URL]"),
    revision: str = typer.Option("head", "--revision", help="target Alembic revision"),
) -> None:
    """Bring the database schema up to date (Alembic); `serve` does this on start too."""
    from api.db import make_engine
    from api.migrate import upgrade

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = _settings(database_url=database_url)
    engine = make_engine(settings.database_url)
    upgrade(engine, revision)
    typer.echo(f"database at revision {revision}: {engine.url.render_as_string(hide_password=True)}")
