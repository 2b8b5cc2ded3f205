"""The `negawatt` command. Each role adds its sub-commands here as it lands
(oracle, node, api, devnet); the foundation provides manifest and Merkle tools."""

from __future__ import annotations

import json
import os
from importlib.metadata import version as package_version
from pathlib import Path

import typer

from api.cli import api_app
from buyer.cli import buyer_app
from negawatt.devnet.cli import devnet_app
from node.cli import node_app
from oracle.cli import oracle_app
from vtn.cli import vtn_app

app = typer.Typer(name="negawatt", help="negawatt: a DePIN flexibility network.", no_args_is_help=True)
manifest_app = typer.Typer(help="Inspect deployment manifests.", no_args_is_help=True)
merkle_app = typer.Typer(help="Rewards Merkle trees (OpenZeppelin StandardMerkleTree layout).", no_args_is_help=True)
app.add_typer(manifest_app, name="manifest")
app.add_typer(merkle_app, name="merkle")
app.add_typer(oracle_app, name="oracle")
app.add_typer(node_app, name="node")
app.add_typer(api_app, name="api")
app.add_typer(devnet_app, name="devnet")
app.add_typer(buyer_app, name="buyer")
app.add_typer(vtn_app, name="vtn")


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


@app.command("keystore")
def keystore(
    out: Path = typer.Option(..., "--out", help="where to write the encrypted keystore (JSON)"),
    import_env: str | None = typer.Option(None, "--import-env",
                                          help="name of an environment variable holding a key to import"),
    password_env: str = typer.Option("NEGAWATT_KEYSTORE_PASSWORD", "--password-env",
                                     help="environment variable holding the password"),
    password_file: Path | None = typer.Option(None, "--password-file", help="file holding the password"),
) -> None:
    """Create an encrypted keystore: a new key, or one imported from an environment variable.

    Prints the address; the key and password never appear in arguments, output or logs."""
    from eth_account import Account

    from protocol.keys import KeyError_, read_password, write_keystore

    if out.exists():
        _fail(f"{out} exists; refusing to overwrite a keystore")
    try:
        password = read_password(password_env, password_file)
        if import_env:
            secret = os.environ.get(import_env)
            if not secret:
                _fail(f"the environment variable {import_env} is empty or not set")
                return
            try:
                key = bytes(Account.from_key(secret).key)
            except (ValueError, TypeError):
                _fail(f"{import_env} does not hold a secp256k1 private key")
                return
        else:
            key = bytes(Account.create().key)
        typer.echo(write_keystore(out, key, password))
    except KeyError_ as error:
        _fail(str(error))


@app.command()
def version() -> None:
    """Print the installed negawatt version."""
    typer.echo(package_version("negawatt"))


@manifest_app.command("show")
def manifest_show(path: Path = typer.Argument(..., help="deployment manifest JSON")) -> None:
    """Validate a deployment manifest and print its chain and contract addresses."""
    from protocol.manifest import ManifestError, load_manifest

    try:
        manifest = load_manifest(path)
    except ManifestError as error:
        _fail(str(error))
        return
    typer.echo(f"chain {manifest.chainId} ({manifest.network}), deployed {manifest.deployedAt}")
    for name, entry in manifest.contracts.items():
        typer.echo(f"{name:18} {entry.address}  block {entry.block}")


@merkle_app.command("build")
def merkle_build(leaves_file: Path = typer.Argument(..., help='JSON list of {"account", "token", "amount"}')) -> None:
    """Build the rewards tree over LEAVES_FILE and print its root and every leaf's proof."""
    from protocol.merkle_cli import build_from_json

    try:
        raw = json.loads(leaves_file.read_text())
    except FileNotFoundError:
        _fail(f"no such file: {leaves_file}")
        return
    except json.JSONDecodeError as error:
        _fail(f"{leaves_file} is not valid JSON: {error}")
        return
    try:
        result = build_from_json(raw)
    except ValueError as error:
        _fail(f"{leaves_file}: {error}")
        return
    typer.echo(json.dumps(result, indent=2))


if __name__ == "__main__":
    app()
