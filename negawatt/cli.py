"""The `negawatt` command. Each role adds its sub-commands here as it lands
(oracle, node, api, devnet); the foundation provides manifest and Merkle tools."""

from __future__ import annotations

import json
from importlib.metadata import version as package_version
from pathlib import Path

import typer

from oracle.cli import oracle_app

app = typer.Typer(name="negawatt", help="negawatt: a DePIN flexibility network.", no_args_is_help=True)
manifest_app = typer.Typer(help="Inspect deployment manifests.", no_args_is_help=True)
merkle_app = typer.Typer(help="Rewards Merkle trees (OpenZeppelin StandardMerkleTree layout).", no_args_is_help=True)
app.add_typer(manifest_app, name="manifest")
app.add_typer(merkle_app, name="merkle")
app.add_typer(oracle_app, name="oracle")


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


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
