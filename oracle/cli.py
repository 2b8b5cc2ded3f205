"""`negawatt oracle ...`: run an oracle, compute baselines from a CSV, verify a portfolio from CSVs."""

from __future__ import annotations

from pathlib import Path

import typer

from oracle.baseline_cli import baseline_command
from oracle.verify_cli import verify_command

oracle_app = typer.Typer(help="The oracle: verified meter ingest, baselines, k-of-n settlement.",
                         no_args_is_help=True)
oracle_app.command("baseline")(baseline_command)
oracle_app.command("verify")(verify_command)


@oracle_app.command("run")
def run_command(
    config: Path = typer.Option(..., "--config", "-c", help="oracle TOML config (see oracle/config.py)"),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True,
                                help="-v: negawatt's debug lines; -vv: the libraries' (web3, httpx) too"),
) -> None:
    """Run the oracle: ingest over HTTP, settle ended requests with the other oracles, finalize."""
    from oracle.config import ConfigError, load_config
    from oracle.logs import configure_logging
    from oracle.service import run
    from protocol.chain import ChainError
    from protocol.keys import KeyError_
    from protocol.manifest import ManifestError

    configure_logging(verbose)  # INFO by default, one line per decision, no library chatter (oracle.logs)
    try:
        run(load_config(config))
    except (ConfigError, ManifestError, KeyError_, ChainError) as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
