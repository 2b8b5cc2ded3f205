"""`negawatt node ...`: set up, register and run a home-gateway node."""

from __future__ import annotations

import json
import logging
import signal
import threading
from pathlib import Path
from typing import NoReturn

import typer

node_app = typer.Typer(help="The home-gateway node: devices, metering, dispatch, claims.", no_args_is_help=True)


def _fail(message: str) -> NoReturn:
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
    devnet: Path | None = typer.Option(None, "--devnet", help="a `negawatt devnet up` run folder: its network.json "
                                       "sets the RPC, manifest, API, interval and confirmations"),
    profile: Path | None = typer.Option(None, "--profile", help="a network profile (network.json) to join"),
    rpc_url: str | None = typer.Option(None, "--rpc-url", help="[default: the profile's, else http://127.0.0.1:8545]"),
    manifest: Path | None = typer.Option(None, "--manifest",
                                         help="[default: the profile's, else deployments/ethereum-local.json]"),
    interval: int | None = typer.Option(None, "--interval", min=60, max=86_400,
                                        help="metering interval, s [default: the profile's, else 900]"),
    confirmations: int | None = typer.Option(None, "--confirmations", min=0, max=128,
                                             help="blocks before trusting an event [default: the profile's, else 2]"),
    api_url: str | None = typer.Option(None, "--api-url", help="the API to publish forecasts to [default: the "
                                       "profile's, else none]"),
    password_env: str = typer.Option("NEGAWATT_NODE_PASSWORD", "--password-env"),
    password_file: Path | None = typer.Option(None, "--password-file",
                                              help="file holding the keystore password (e.g. a systemd credential)"),
) -> None:
    """Create encrypted keystores for the owner and each device, and a node.toml (for a network's
    profile with --devnet or --profile; options given here win over the profile)."""
    import os

    from node.setup import DeviceSpec, NodeSetupError, init_node

    from protocol.keys import KeyError_, read_password

    try:
        password = read_password(password_env, password_file)
    except KeyError_ as error:
        _fail(str(error))
    specs = []
    for item in device:
        kind, _, capacity = item.partition(":")
        if not capacity.isdigit() or int(capacity) <= 0:
            _fail(f"--device {item}: the capacity must be a positive integer of watts")
        try:
            specs.append(DeviceSpec(kind, int(capacity)))
        except NodeSetupError as error:
            _fail(f"--device {item}: {error}")
    settings = _network_settings(devnet, profile)
    given = {"rpc_url": rpc_url, "manifest": manifest, "interval_seconds": interval, "confirmations": confirmations,
             "api_url": api_url}
    if api_url is not None and not api_url.startswith(("http://", "https://")):
        _fail(f"--api-url {api_url}: not an http(s) URL")
    settings.update({name: value for name, value in given.items() if value is not None})
    if password_file is not None:  # `node run` reads the same file
        settings["password_file"] = str(password_file.resolve())
    try:
        created = init_node(directory, specs, password, zone=zone,
                            rpc_url=settings.pop("rpc_url", "http://127.0.0.1:8545"),
                            manifest=Path(settings.pop("manifest", "deployments/ethereum-local.json")),
                            interval_seconds=settings.pop("interval_seconds", 900), password_env=password_env,
                            extra=settings)
    except NodeSetupError as error:
        _fail(str(error))
        return
    for index, (address, spec) in enumerate(created.devices):
        typer.echo(f"device {index}: {address} ({spec.kind}, {spec.capacity_w} W)")
    typer.echo(f"owner: {created.owner}\nconfiguration: {created.config_path}")


def _network_settings(devnet: Path | None, profile: Path | None) -> dict:
    """node.toml settings from the network profile of --devnet or --profile (none without either)."""
    if devnet is None and profile is None:
        return {}
    if devnet is not None and profile is not None:
        _fail("give --devnet RUN_DIR or --profile FILE, not both")
    from node.network_settings import profile_settings
    from protocol.manifest import ManifestError, load_manifest
    from protocol.network_profile import ProfileError, read_profile

    location = devnet if devnet is not None else profile
    if devnet is not None and not devnet.is_dir():
        _fail(f"--devnet {devnet}: not a folder (give the run folder `negawatt devnet up` printed)")
    try:
        network = read_profile(location)
        deployment = load_manifest(network.manifest)
    except (ProfileError, ManifestError) as error:
        _fail(str(error))
    if deployment.chainId != network.chain_id:
        _fail(f"{location}: the profile is for chain {network.chain_id}, its manifest for chain {deployment.chainId}")
    return profile_settings(network, deployment, devnet=True if devnet is not None else None)


@node_app.command("register")
def register_command(config: Path = typer.Option(Path("node.toml"), "--config", "-c")) -> None:
    """Register the devices on-chain with their device permits and bond the required stake (after checking
    the owner holds the ETH for gas and the NEGA for the bond)."""
    from node.funding import FundsError
    from node.runtime import register
    from protocol.chain import ChainError

    node = _open(config)
    try:
        for line in register(node):
            typer.echo(line)
    except FundsError as error:
        _fail(str(error))
    except ChainError as error:
        _fail(f"on-chain: {error}")


@node_app.command("status")
def status_command(config: Path = typer.Option(Path("node.toml"), "--config", "-c"),
                   as_json: bool = typer.Option(False, "--json", help="the status as JSON, for tools")) -> None:
    """Devices, their state and why one cannot earn yet, registration, bond, outbox, unclaimed rewards
    (amounts in token units; --json: base units, as JSON)."""
    from node.runtime import status
    from node.status_view import render

    body = status(_open(config))
    typer.echo(json.dumps(body, indent=2, default=str) if as_json else render(body))


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
    if not verbose:  # one line per decision, not per HTTP request or RPC call
        for chatty in ("httpx", "httpcore", "web3", "urllib3"):
            logging.getLogger(chatty).setLevel(logging.WARNING)
    node = _open(config)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    run(node, stop)
