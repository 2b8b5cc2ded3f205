"""`negawatt vtn serve`: the OpenADR 3.1.0 VTN facade as a process (settings from NEGAWATT_VTN_*, options
override them), served with the limits of protocol.http_limits."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

vtn_app = typer.Typer(help="The OpenADR 3.1.0 VTN facade (a DSO's DERMS and external VENs).", no_args_is_help=True)
log = logging.getLogger(__name__)


@vtn_app.command("serve")
def serve(
    clients_file: Path | None = typer.Option(None, "--clients-file", help="OAuth clients and site keystores (JSON)"),
    manifest: Path | None = typer.Option(None, "--manifest", help="deployment manifest"),
    rpc_url: str | None = typer.Option(None, "--rpc-url", help="JSON-RPC endpoint"),
    database_url: str | None = typer.Option(None, "--database-url", help="SQLAlchemy URL or SQLite path"),
    host: str | None = typer.Option(None, "--host"),
    port: int | None = typer.Option(None, "--port"),
    public_url: str | None = typer.Option(None, "--public-url", help="where clients reach the facade"),
    api_url: str | None = typer.Option(None, "--api-url", help="negawatt API (delivered energy in results)"),
    oracle: list[str] = typer.Option([], "--oracle", help="oracle base URL (repeat); default: the OracleHub's"),
    poll_seconds: float | None = typer.Option(None, "--poll-seconds", help="pause between result refreshes"),
    callback_allow: list[str] = typer.Option([], "--callback-allow",
                                             help="IP network or host name webhooks may reach although not public "
                                                  "(repeat; e.g. 127.0.0.0/8 on a devnet)"),
) -> None:
    """Serve the facade until interrupted."""
    from protocol.http_limits import HttpLimits, limited_server
    from vtn.app import build_context, create_app
    from vtn.clients import ClientsError
    from vtn.settings import VtnSettings

    given = {"clients_file": clients_file, "manifest": manifest, "rpc_url": rpc_url, "database_url": database_url,
             "host": host, "port": port, "public_url": public_url, "api_url": api_url,
             "oracles": list(oracle) or None, "poll_seconds": poll_seconds,
             "callback_allow": list(callback_allow) or None}
    try:
        settings = VtnSettings(**{k: v for k, v in given.items() if v is not None})
    except ValueError as error:  # pydantic's ValidationError names the bad setting
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per refresh poll is noise
    try:
        context = build_context(settings)
    except (ClientsError, OSError, ValueError, RuntimeError) as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    app = create_app(context)
    limits = HttpLimits(max_body_bytes=settings.max_body_bytes)
    limited_server(app, limits, host=settings.host, port=settings.port, log_level="warning").run()
