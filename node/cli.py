"""`negawatt node ...`: set up, register and run a home-gateway node."""

from __future__ import annotations

import json
import logging
import signal
import threading
from pathlib import Path

import typer

node_app = typer.Typer(help="The home-gateway node: devices, metering, dispatch, claims.", no_args_is_help=True)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _open(config: Path):
    from node.config import ConfigError, load_config
    from node.devices.factory import DeviceConfigError
    from node.runtime import open_node
    from protocol.chain import ChainError
    from protocol.keys import KeyError_
    from protocol.manifest import ManifestError

    try:
        return open_node(load_config(config))
    except (ConfigError, ManifestError, KeyError_, ChainError, DeviceConfigError) as error:
        _fail(str(error))


@node_app.command("init")
def init(
    directory: Path = typer.Option(Path("."), "--dir", help="where node.toml and keys/ are written"),
    device: list[str] = typer.Option(..., "--device", help="KIND:CAPACITY_W, e.g. ev_charger:7400 (repeatable)"),
    zone: int = typer.Option(1, "--zone", min=0),
    rpc_url: str = typer.Option("http://127.0.0.1:8545", "--rpc-url"),
    manifest: Path = typer.Option(Path("deployments/ethereum-local.json"), "--manifest"),
    interval: int = typer.Option(900, "--interval", min=60, max=86_400),
    password_env: str = typer.Option("NEGAWATT_NODE_PASSWORD", "--password-env"),
) -> None:
    """Create encrypted keystores for the owner and each device, and a node.toml."""
    import os

    from node.setup import DeviceSpec, NodeSetupError, init_node

    password = os.environ.get(password_env)
    if not password:
        _fail(f"set the keystore password in {password_env}")
    specs = []
    for item in device:
        kind, _, capacity = item.partition(":")
        if not capacity.isdigit() or int(capacity) <= 0:
            _fail(f"--device {item}: the capacity must be a positive integer of watts")
        try:
            specs.append(DeviceSpec(kind, int(capacity)))
        except NodeSetupError as error:
            _fail(f"--device {item}: {error}")
    try:
        created = init_node(directory, specs, password, zone=zone, rpc_url=rpc_url, manifest=manifest,
                            interval_seconds=interval, password_env=password_env)
    except NodeSetupError as error:
        _fail(str(error))
        return
    for index, (address, spec) in enumerate(created.devices):
        typer.echo(f"device {index}: {address} ({spec.kind}, {spec.capacity_w} W)")
    typer.echo(f"owner: {created.owner}\nconfiguration: {created.config_path}")


@node_app.command("register")
def register_command(config: Path = typer.Option(Path("node.toml"), "--config", "-c")) -> None:
    """Register the devices on-chain with their device permits and bond the required stake."""
    from node.runtime import register
    from protocol.chain import ChainError

    node = _open(config)
    try:
        for line in register(node):
            typer.echo(line)
    except ChainError as error:
        _fail(f"on-chain: {error}")


@node_app.command("status")
def status_command(config: Path = typer.Option(Path("node.toml"), "--config", "-c")) -> None:
    """Devices, registration, stake, outbox depth, last upload per oracle, unclaimed rewards (JSON)."""
    from node.runtime import status

    typer.echo(json.dumps(status(_open(config)), indent=2, default=str))


@node_app.command("claim")
def claim_command(config: Path = typer.Option(Path("node.toml"), "--config", "-c")) -> None:
    """Claim every unclaimed reward now."""
    from node.runtime import claim_now
    from protocol.chain import ChainError

    try:
        typer.echo(claim_now(_open(config), force=True))
    except ChainError as error:
        _fail(f"on-chain: {error}")


@node_app.command("run")
def run_command(config: Path = typer.Option(Path("node.toml"), "--config", "-c"),
                verbose: bool = typer.Option(False, "--verbose", "-v")) -> None:
    """Meter, upload, follow requests, curtail and claim until interrupted."""
    from node.runtime import run

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    node = _open(config)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run(node, stop)
