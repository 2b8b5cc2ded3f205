"""`negawatt devnet up | demo | down | warp | fund`: a whole network on this machine, the demo event on it,
and the testers' tools for a running one (move its clock, fund an address)."""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import typer

devnet_app = typer.Typer(help="A local network: anvil, oracles, the API and nodes, each its own process.",
                         no_args_is_help=True)
DEFAULT_RUNS = Path("runs")


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _spec(nodes: int, devices_per_node: int, zones: int, oracles: int, threshold: int, api: bool,
          hardware: bool = False, **extra: Any):
    from pydantic import ValidationError

    from negawatt.devnet.network import DevnetSpec

    try:
        return DevnetSpec(nodes=nodes, devices_per_node=devices_per_node, zones=zones, oracles=oracles,
                          threshold=threshold, api=api, hardware=hardware, **extra)
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


TIME_SCALE = typer.Option(30.0, "--time-scale", help="chain seconds per wall second once the devnet is up: at "
                          "30 a one-hour request opens, runs, settles and finalizes in about 4 min; 1 is real time")
BLOCK_TIME = typer.Option(1.0, "--block-time", help="wall seconds between the blocks the keeper mines (transactions "
                          "are still mined at once)")


@devnet_app.command("up")
def up(nodes: int = NODES, devices_per_node: int = DEVICES, zones: int = ZONES, oracles: int = ORACLES,
       threshold: int = THRESHOLD, run_dir: Path | None = RUN_DIR, api: bool = API,
       hardware: bool = HARDWARE, time_scale: float = TIME_SCALE, block_time: float = BLOCK_TIME,
       capability_test_bps: int = typer.Option(2_000, "--capability-test-bps", help="share of a zone's sites each "
                                               "`negawatt devnet test-capability` draws, bps"),
       vtn: bool = typer.Option(False, "--vtn", help="also the OpenADR 3.1.0 VTN facade; its clients' settings "
                                "go to RUN_DIR/vtn.json")) -> None:
    """Start anvil, deploy, and run the oracles, the API and the nodes until Ctrl-C.

    A keeper mines a block every --block-time s and runs the chain's clock --time-scale times
    faster, so requests end, settle and finalize with nobody touching it. Writes RUN_DIR/network.json
    (how other tools join) and RUN_DIR/accounts.json (a buyer's and a spare owner's keystores)."""
    from negawatt.devnet.accounts import describe
    from negawatt.devnet.keeper import KeeperError, check_options
    from negawatt.devnet.network import Devnet, DevnetError
    from negawatt.devnet.processes import ORCHESTRATOR_FILE

    try:
        check_options(time_scale, block_time)
    except KeeperError as error:
        _fail(str(error))
    spec = _spec(nodes, devices_per_node, zones, oracles, threshold, api, hardware,
                 capability_test_bps=capability_test_bps)
    console = _console()
    # the time scale is known before the oracles start: their grace periods follow it
    net = Devnet(spec, _run_dir(run_dir), on_step=lambda m: console.print(f"[green]✓[/] {m}"), time_scale=time_scale)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    pid_file = net.run_dir / ORCHESTRATOR_FILE
    pid_file.write_text(str(os.getpid()))
    keeper = None
    try:
        _bring_up(net, console)
        _keeper_log(net.run_dir)
        keeper = net.start_keeper(block_time)
        profile = net.write_network_profile(block_time)
        accounts = net.write_accounts()
        console.print(f"[green]✓[/] the chain mines a block every {block_time:g} s, its clock "
                      + ("in real time" if time_scale == 1 else f"{time_scale:g}x the wall clock")
                      + f" (`negawatt devnet warp --run-dir {net.run_dir} --by 2h` jumps); network profile {profile}")
        for line in describe(accounts, net.run_dir):
            console.print(f"  {line}", soft_wrap=True)
        if vtn:
            from negawatt.devnet.vtn import start_vtn

            console.print(f"[bold]OpenADR VTN[/]: stock clients read {start_vtn(net, accounts)} (vtn/README.md)")
        console.print(f"[bold]devnet up[/]: RPC {net.rpc_url}, manifest {net.manifest_path}, "
                      f"API {net.api_url or '(not running)'}, logs in {net.run_dir / 'logs'}")
        if net.api_url:
            console.print(f"[bold]web app[/]: open {net.api_url}/ (`negawatt devnet keys --run-dir {net.run_dir}` "
                          "prints the buyer's and the node owners' keys for its \"use a devnet key\")")
        console.print("Ctrl-C (or `negawatt devnet down --run-dir ...`) stops it.")
        while not stop.is_set():
            net.check_alive()
            stop.wait(1)
    except DevnetError as error:
        console.print(f"[red]error:[/] {error}")
        raise typer.Exit(code=1) from None
    finally:
        console.print("stopping the devnet ...")
        if keeper is not None:
            keeper.stop()
        net.stop()
        pid_file.unlink(missing_ok=True)
        console.print("stopped")


def _keeper_log(run_dir: Path) -> None:
    """The keeper's log lines go to RUN_DIR/logs/keeper.log."""
    handler = logging.FileHandler(run_dir / "logs" / "keeper.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    keeper_log = logging.getLogger("negawatt.devnet.keeper")
    keeper_log.addHandler(handler)
    keeper_log.setLevel(logging.INFO)


def _bring_up(net, console) -> None:
    """`net.up()`, with the node set-up's progress (a bar on a terminal, lines in a log)."""
    from negawatt.devnet.progress import StepProgress

    bar: StepProgress | None = None

    def progress(done: int) -> None:
        nonlocal bar
        if bar is None:
            bar = StepProgress(console, "nodes: keys, registration, backfilled history", net.spec.nodes, "nodes")
        bar.update(done)

    try:
        net.up(progress)
    finally:
        if bar is not None:
            bar.close()


class _Stopwatch:
    """Each step's line with the seconds since the start, and at the end where the time went."""

    def __init__(self, console) -> None:
        self.console, self.began, self.last, self.spans = console, time.monotonic(), time.monotonic(), []

    def step(self, message: str) -> None:
        now = time.monotonic()
        self.spans.append((now - self.last, message))
        self.last = now
        self.console.print(f"[green]✓[/] [dim]{now - self.began:5.0f} s[/] {message}")

    def watch(self, label: str, total: int, unit: str):
        """A progress display for one long step of the event (run_event's `watch`)."""
        from negawatt.devnet.progress import StepProgress

        bar = StepProgress(self.console, label, total, unit)

        def counter(done: int) -> None:
            bar.update(done)
            if done >= total:
                bar.close()

        return counter

    def report(self) -> None:
        """The slowest steps, each with the time it took to get there from the step before."""
        slowest = sorted(self.spans, key=lambda span: -span[0])[:5]
        self.console.print("where the time went (the slowest steps, timed from the step before): " + "; ".join(
            f"{seconds:.0f} s to {message.split(':')[0][:60]}" for seconds, message in slowest))


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
    clock = _Stopwatch(console)
    net = Devnet(spec, _run_dir(run_dir), on_step=clock.step)
    try:
        _bring_up(net, console)
        event = run_event(net, clock.step, watch=clock.watch)
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
        if net.api_url:
            console.print(f"web app: [bold]{net.api_url}/[/] " + (
                "shows this event while the network keeps running" if keep else
                "showed the event while the demo ran; `make demo DEMO_ARGS=--keep` keeps it up to browse afterwards"))
        clock.report()
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


def _attach(run_dir: Path) -> tuple[Any, Any, Any]:
    """(web3, manifest, profile) of the running devnet of `run_dir`, from its network.json."""
    from protocol.chain import ChainError, connect
    from protocol.manifest import ManifestError, check_chain, load_manifest
    from protocol.network_profile import PROFILE_FILE, ProfileError, read_profile

    if not (run_dir / PROFILE_FILE).is_file():
        _fail(f"{run_dir} holds no {PROFILE_FILE}: give the --run-dir of a running `negawatt devnet up`")
    try:
        profile = read_profile(run_dir)
        manifest = load_manifest(profile.manifest)
        web3 = connect(profile.rpc_url, timeout=10)
        check_chain(manifest, web3)
    except (ProfileError, ManifestError) as error:
        _fail(str(error))
    except ChainError as error:
        _fail(f"{error}: is the devnet of {run_dir} still running?")
    return web3, manifest, profile


@devnet_app.command("warp")
def warp_command(
    run_dir: Path = typer.Option(..., "--run-dir", help="the run folder of a running devnet"),
    to: str | None = typer.Option(None, "--to", help="move the chain's clock to this time (ISO 8601 with a "
                                  "timezone, e.g. 2026-12-02T18:00Z, or unix seconds)"),
    by: str | None = typer.Option(None, "--by", help="move the chain's clock on by this much: 2h, 90m, 1h30m, 3600"),
) -> None:
    """Move a running devnet's chain clock forward (never back; at most 7 days at once)."""
    from negawatt.devnet.keeper import latest_timestamp
    from negawatt.devnet.warp import WarpError, iso, parse_duration, parse_instant, plan, warp

    try:
        target_to = parse_instant(to) if to is not None else None
        target_by = parse_duration(by) if by is not None else None
        if to is None and by is None:
            raise WarpError("give one of --to ISO or --by DURATION")
    except WarpError as error:
        _fail(str(error))
    web3, _, _ = _attach(run_dir)
    before = latest_timestamp(web3)
    try:
        reached = warp(web3, plan(before, target_to, target_by))
    except WarpError as error:
        _fail(str(error))
    typer.echo(f"chain clock moved from {iso(before)} to {iso(reached)} (+{reached - before} s)")


@devnet_app.command("fund")
def fund_command(
    address: str = typer.Argument(..., help="the address to fund (0x and 40 hex digits)"),
    eth: str | None = typer.Option(None, "--eth", help="ETH for gas, e.g. 10"),
    nega: str | None = typer.Option(None, "--nega", help="NEGA (the protocol token, for bonds), e.g. 100"),
    musd: str | None = typer.Option(None, "--musd", help="mUSD (the devnet's stablecoin, for buyers), e.g. 1000"),
    run_dir: Path = typer.Option(..., "--run-dir", help="the run folder of a running devnet"),
) -> None:
    """Fund an address on a running devnet with ETH, NEGA and mUSD.

    Amounts are in token units; with no amount at all: 10 ETH, 100 NEGA and 1000 mUSD."""
    from negawatt.devnet.faucet import FaucetError, check_address, fund, make_order
    from protocol.manifest import ManifestError

    try:
        check_address(address)
    except FaucetError as error:
        _fail(str(error))
    web3, manifest, _ = _attach(run_dir)
    try:
        nega_decimals = int(manifest.contract(web3, "NegawattToken").functions.decimals().call())
        musd_decimals = int(manifest.contract(web3, "MockStablecoin").functions.decimals().call())
        order = make_order(address, eth, nega, musd, nega_decimals, musd_decimals)
        grants = fund(web3, manifest, order)
    except FaucetError as error:
        _fail(str(error))
    except ManifestError as error:
        _fail(str(error))
    typer.echo(f"funded {order.address}: " + "; ".join(grant.line() for grant in grants))


@devnet_app.command("keys")
def keys_command(
    run_dir: Path = typer.Option(..., "--run-dir", help="the run folder of a `negawatt devnet up`"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object: a list of {role, address, privateKey}"),
) -> None:
    """Print the private keys of a devnet's buyer, spare owner and node owners (chain 31337 only), to
    paste into a wallet or the web app's "use a devnet key"."""
    import json

    from negawatt.devnet.keys import KeysError, devnet_keys

    try:
        keys = devnet_keys(run_dir)
    except KeysError as error:
        _fail(str(error))
    if as_json:
        typer.echo(json.dumps({"keys": [{"role": k.role, "address": k.address, "privateKey": k.private_key}
                                        for k in keys]}))
        return
    for k in keys:
        typer.echo(f"{k.role}: {k.address} {k.private_key}")


@devnet_app.command("test-capability")
def test_capability_command(
    run_dir: Path = typer.Option(..., "--run-dir", help="the run folder of a running devnet"),
    zone: int = typer.Option(1, "--zone", min=0, help="the zone whose sites the test draws from"),
    price: str = typer.Option("0.30", "--price", help="mUSD per kWh the tested sites are paid for what they shed"),
    budget: str = typer.Option("5", "--budget", help="mUSD the test escrows (the protocol's budget for it)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object"),
) -> None:
    """Open a capability test (proof of flexibility): a short request of the devnet's test budget account.

    The nodes compute the draw of tested sites from the gate block and curtail those sites' devices
    for the window; the oracles settle it like any request and write each tested site's capability
    record into the report (served at /v1/sites/{address}/capability once the report is final)."""
    import json

    from buyer.checks import BuyerError, to_base_units
    from negawatt.devnet.capability import CapabilityTestError, open_test

    web3, manifest, profile = _attach(run_dir)
    decimals = int(manifest.contract(web3, "MockStablecoin").functions.decimals().call())
    try:
        opened = open_test(web3, manifest, zone, to_base_units(price, decimals, "--price"),
                           to_base_units(budget, decimals, "--budget"), profile.interval_seconds)
    except (CapabilityTestError, BuyerError) as error:
        _fail(str(error))
    if as_json:
        typer.echo(json.dumps({"requestId": opened.request_id, "zone": opened.zone, "start": opened.start,
                               "end": opened.end, "gateClosure": opened.gate_closure, "testBps": opened.test_bps,
                               "pricePerKWh": str(opened.price_per_kwh), "budget": str(opened.budget)}))
        return
    typer.echo(f"capability test {opened.request_id} opened in zone {opened.zone}: window {opened.start}.."
               f"{opened.end} (gate {opened.gate_closure}), {opened.test_bps / 100:g} % of the zone's sites drawn, "
               f"paid {price} mUSD/kWh from a {budget} mUSD budget; records at <API>/v1/sites/<site>/capability "
               f"once its report is final")


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
