"""`python -m bench <name>`: run one benchmark and print its figures as one JSON object."""

from __future__ import annotations

import json

import typer

app = typer.Typer(help="negawatt benchmarks; each prints one JSON object on stdout.", no_args_is_help=True)


@app.command()
def gas() -> None:
    """Whole-transaction gas of each protocol operation, measured on a fresh anvil chain."""
    from bench.gas import run

    typer.echo(json.dumps(run()))


@app.command()
def oracle(
    devices: int = typer.Option(100_000, "--devices", min=1, help="number of devices to settle"),
    verify_batches: int = typer.Option(20_000, "--verify-batches", min=1, help="signed batches to verify"),
    history_days: int = typer.Option(10, "--history-days", min=1, max=92,
                                     help="days of readings before the event"),
    streamed: bool = typer.Option(False, "--streamed", help="read the rows one block of devices at a time"),
) -> None:
    """Oracle throughput: signature verification and settlement of N devices (see bench/oracle.py)."""
    from bench.oracle import run

    typer.echo(json.dumps(run(devices, verify_batches, history_days=history_days, streamed=streamed)))


@app.command()
def node(idle_seconds: int = typer.Option(30, "--idle-seconds", min=5),
         requests: int = typer.Option(3, "--requests", min=1, max=20)) -> None:
    """A node with 10 simulated devices on anvil: memory, idle CPU, dispatch latency (bench/node.py)."""
    from bench.node import run

    typer.echo(json.dumps(run(idle_seconds, requests)))


@app.command()
def api(devices: int = typer.Option(100_000, "--devices", min=1), requests: int = typer.Option(1_000, "--requests", min=1),
        seconds: float = typer.Option(15.0, "--seconds", min=1), clients: int = typer.Option(1, "--clients", min=1),
        connections: int = typer.Option(16, "--connections", min=1)) -> None:
    """The dApp API's read mix on a mirror of N devices and M settled requests: rps, p50/p99 (bench/api.py)."""
    from bench.api import run

    typer.echo(json.dumps(run(devices, requests, seconds=seconds, clients=clients, connections=connections)))


@app.command()
def mv(sites: int = typer.Option(200, "--sites", min=10, max=20_000, help="number of simulated sites"),
       events: int = typer.Option(20, "--events", min=2, max=200, help="events, a quarter of them placebo"),
       seed: int = typer.Option(0, "--seed", min=0), holdout_bps: int = typer.Option(1_500, "--holdout-bps", min=0,
                                                                                   max=5_000),
       workers: int = typer.Option(2, "--workers", min=1, max=64),
       without: list[str] = typer.Option([], "--without", help="leave a device kind out (repeatable), e.g. ev_charger")
       ) -> None:
    """Portfolio M&V against ground truth: N simulated sites, E events with a holdout (bench/mv.py)."""
    from bench.mv_sites import CONTROLLABLE_KINDS

    unknown = [kind for kind in without if kind not in CONTROLLABLE_KINDS]
    if unknown:
        raise typer.BadParameter(f"unknown kind {unknown[0]!r}; one of {', '.join(CONTROLLABLE_KINDS)}",
                                 param_hint="--without")
    from rich.progress import Progress

    from bench.mv import run

    with Progress(transient=True) as bar:
        task = bar.add_task("simulating sites", total=sites)
        result = run(sites, events, seed=seed, holdout_bps=holdout_bps, workers=workers,
                     progress=lambda done, total: bar.update(task, completed=done, total=total),
                     without=tuple(without))
    typer.echo(json.dumps(result))


@app.command("oracle-service")
def oracle_service(
    sites: int = typer.Option(10_000, "--sites", min=1, max=1_000_000, help="sites (a site meter + a device each)"),
    store: str = typer.Option("sqlite", "--store", help="the oracle's store: sqlite or postgresql"),
    connections: int = typer.Option(16, "--connections", min=1, max=1_024, help="HTTP connections of the load"),
    live_intervals: int = typer.Option(2, "--live-intervals", min=1, max=96,
                                       help="one-interval batches sent per meter in the live phase"),
    history_days: int = typer.Option(10, "--history-days", min=1, max=90, help="days of history before the event"),
    skip_peer_sync: bool = typer.Option(False, "--skip-peer-sync", help="leave the peer sync phase out"),
    postgres_url: str | None = typer.Option(None, "--postgres-url", envvar="NEGAWATT_BENCH_POSTGRES_URL",
                                            help="a PostgreSQL server to use (else a throwaway one is started)"),
    bulk_batches: int = typer.Option(1_000, "--bulk-batches", min=1, max=5_000,
                                     help="history batches per upload to POST /v1/meter-batches/bulk"),
) -> None:
    """One real `negawatt oracle run` on anvil with N sites: ingest, store, settlement, peer sync (bench/oracle_service.py)."""
    if store not in ("sqlite", "postgresql"):
        raise typer.BadParameter(f"{store!r} is not a store; one of sqlite, postgresql", param_hint="--store")
    from bench.oracle_service import BenchError, run

    try:
        result = run(sites, store, connections, live_intervals, history_days, skip_peer_sync, postgres_url,
                     bulk_batches)
    except BenchError as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    typer.echo(json.dumps(result))


@app.command()
def retention(meters: int = typer.Option(500, "--meters", min=1, max=100_000),
              days: int = typer.Option(110, "--days", min=1, max=2_000),
              chunk: int = typer.Option(5_000, "--chunk", min=1, max=100_000),
              database_url: str = typer.Option(None, "--database-url",
                                               help="a THROWAWAY PostgreSQL database (its store tables are dropped); "
                                                    "a temporary SQLite file if unset")) -> None:
    """The store's daily upkeep: a backlog prune, one day's, and a no-op; lock hold times (bench/retention.py)."""
    from bench.retention import run

    typer.echo(json.dumps(run(meters, days, database_url=database_url, chunk=chunk)))


@app.command("store-load")
def store_load(
    meters: int = typer.Option(10_000, "--meters", min=1, max=200_000, help="meters in the store"),
    days: int = typer.Option(11, "--days", min=1, max=92, help="days of readings per meter"),
    repeats: int = typer.Option(3, "--repeats", min=1, max=20, help="loads timed (the best is reported)"),
) -> None:
    """Load N meters x D days from a SQLite compact store into the settlement array (bench/store_load.py)."""
    from bench.store_load import BenchError, run

    try:
        result = run(meters, days, repeats)
    except BenchError as error:
        typer.secho(f"error: {error}", fg=typer.colors.RED, err=True)
        raise typer.Exit(code=2) from None
    typer.echo(json.dumps(result))


@app.callback()
def main() -> None:
    """negawatt benchmarks."""


if __name__ == "__main__":
    app()
