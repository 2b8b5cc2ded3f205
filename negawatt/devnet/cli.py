"""`negawatt devnet up | demo | down`: a whole network on this machine, and the demo event on it."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import typer

devnet_app = typer.Typer(help="A local network: anvil, oracles, the API and nodes, each its own process.",
                         no_args_is_help=True)
DEFAULT_RUNS = Path("runs")


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _spec(nodes: int, devices_per_node: int, zones: int, oracles: int, threshold: int, api: bool,
          hardware: bool = False):
    from pydantic import ValidationError

    from negawatt.devnet.network import DevnetSpec

    try:
        return DevnetSpec(nodes=nodes, devices_per_node=devices_per_node, zones=zones, oracles=oracles,
                          threshold=threshold, api=api, hardware=hardware)
    except ValidationError as error:
        _fail("; ".join(f"--{'-'.join(str(p) for p in e['loc']).replace('_', '-') or 'options'}: {e['msg']}"
                        for e in error.errors()))


def _console():
    """A console as wide as the terminal, or wide enough for the summary tables when output is a log."""
    import sys

    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=140)


def _run_dir(base: Path | None) -> Path:
    if base is not None:
        if (base / "processes.json").exists():
            _fail(f"{base} holds a running devnet (processes.json); `negawatt devnet down --run-dir {base}` first")
        return base
    return DEFAULT_RUNS / datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")


NODES = typer.Option(20, "--nodes", help="node daemons (home gateways)")
DEVICES = typer.Option(3, "--devices-per-node", help="simulated devices per node")
ZONES = typer.Option(1, "--zones", help="grid zones the nodes are spread over (each needs 10+ sites for a holdout)")
ORACLES = typer.Option(3, "--oracles", help="oracle processes")
THRESHOLD = typer.Option(2, "--threshold", help="signatures a report needs (k of n)")
RUN_DIR = typer.Option(None, "--run-dir", help="where configs, keys, databases and logs go (default runs/<time>)")
API = typer.Option(True, "--api/--no-api", help="run the API service")
HARDWARE = typer.Option(False, "--hardware", help="one more node driving simulated Modbus, OCPP and MQTT "
                        "devices over the real protocols (needs mosquitto)")


@devnet_app.command("up")
def up(nodes: int = NODES, devices_per_node: int = DEVICES, zones: int = ZONES, oracles: int = ORACLES,
       threshold: int = THRESHOLD, run_dir: Path | None = RUN_DIR, api: bool = API,
       hardware: bool = HARDWARE) -> None:
    """Start anvil, deploy, and run the oracles, the API and the nodes until Ctrl-C."""
    from negawatt.devnet.network import Devnet, DevnetError
    from negawatt.devnet.processes import ORCHESTRATOR_FILE

    spec = _spec(nodes, devices_per_node, zones, oracles, threshold, api, hardware)
    console = _console()
    net = Devnet(spec, _run_dir(run_dir), on_step=lambda m: console.print(f"[green]✓[/] {m}"))
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    pid_file = net.run_dir / ORCHESTRATOR_FILE
    pid_file.write_text(str(os.getpid()))
    try:
        _bring_up(net, console)
        console.print(f"[bold]devnet up[/]: RPC {net.rpc_url}, manifest {net.manifest_path}, "
                      f"API {net.api_url or '(not running)'}, logs in {net.run_dir / 'logs'}")
        console.print("Ctrl-C (or `negawatt devnet down --run-dir ...`) stops it.")
        while not stop.is_set():
            net.check_alive()
            stop.wait(1)
    except DevnetError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(code=1) from None
    finally:
        console.print("stopping the devnet ...")
        net.stop()
        pid_file.unlink(missing_ok=True)
        console.print("stopped")


def _bring_up(net, console) -> None:
    """`net.up()`, with a progress bar while the nodes are set up."""
    from rich.progress import Progress

    with Progress(console=console, transient=True) as bar:
        task = None

        def progress(done: int) -> None:
            nonlocal task
            if task is None:
                task = bar.add_task("nodes: keys, registration, backfilled history", total=net.spec.nodes)
            bar.update(task, completed=done)

        net.up(progress)


@devnet_app.command("demo")
def demo(nodes: int = NODES, devices_per_node: int = DEVICES, zones: int = ZONES, oracles: int = ORACLES,
         threshold: int = THRESHOLD, run_dir: Path | None = RUN_DIR, api: bool = API, hardware: bool = HARDWARE,
         keep: bool = typer.Option(False, "--keep", help="keep the network running after the summary")) -> None:
    """Bring a devnet up and run one flexibility event end to end, then print the summary and a plot."""
    from negawatt.devnet.network import Devnet, DevnetError
    from negawatt.devnet.scenario import run_event
    from negawatt.devnet.summary import api_zone_stats, plot, render, render_api, summarize, write_json

    spec = _spec(nodes, devices_per_node, zones, oracles, threshold, api, hardware)
    console = _console()
    began = time.monotonic()
    net = Devnet(spec, _run_dir(run_dir), on_step=lambda m: console.print(f"[green]✓[/] {m}"))
    try:
        _bring_up(net, console)
        with console.status("the flexibility event ...") as status:
            def step(message: str) -> None:
                console.print(f"[green]✓[/] {message}")
                status.update(message)
            event = run_event(net, step)
        summary = summarize(net, event)
        render(summary, console)
        if net.api_url:
            render_api(api_zone_stats(net, event), summary, console)
        path = plot(summary, net, net.run_dir / "event.png")
        latencies = sorted(event.dispatch_latency_ms)
        if latencies:
            console.print(f"dispatch latency (window start to setpoint applied): median "
                          f"{latencies[len(latencies) // 2]:.0f} ms, max {latencies[-1]:.0f} ms")
        console.print(f"plot of the dispatched and held-out sites against their baselines: [bold]{path}[/]")
        console.print(f"summary: [bold]{write_json(summary, net.run_dir / 'summary.json')}[/]")
        console.print(f"logs, configs and databases: {net.run_dir}; API was {net.api_url}")
        console.print(f"demo finished in {time.monotonic() - began:.0f} s")
        if keep:
            console.print("the network keeps running; Ctrl-C stops it")
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            stop.wait()
    except DevnetError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(code=1) from None
    finally:
        net.stop()


@devnet_app.command("down")
def down(run_dir: Path = typer.Option(..., "--run-dir", help="the run folder of the devnet to stop")) -> None:
    """Stop a devnet started in another terminal (its processes are listed in <run-dir>/processes.json)."""
    from negawatt.devnet.processes import stop_recorded

    if not run_dir.is_dir():
        _fail(f"{run_dir} is not a folder")
    try:
        stopped = stop_recorded(run_dir)
    except ValueError as error:
        _fail(str(error))
        return
    typer.echo(f"stopped {len(stopped)} process(es)" + (f": {', '.join(stopped)}" if stopped else ""))


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    devnet_app()
