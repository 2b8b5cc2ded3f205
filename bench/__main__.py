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
) -> None:
    """Oracle throughput: signature verification and settlement of N devices (see bench/oracle.py)."""
    from bench.oracle import run

    typer.echo(json.dumps(run(devices, verify_batches)))


@app.command()
def node(idle_seconds: int = typer.Option(30, "--idle-seconds", min=5),
         requests: int = typer.Option(3, "--requests", min=1, max=20)) -> None:
    """A node with 10 simulated devices on anvil: memory, idle CPU, dispatch latency (bench/node.py)."""
    from bench.node import run

    typer.echo(json.dumps(run(idle_seconds, requests)))


@app.callback()
def main() -> None:
    """negawatt benchmarks."""


if __name__ == "__main__":
    app()
