"""`ape run deploy`: deploy and wire every negawatt contract, then write the deployment manifest.

    ape run deploy                                   # local network, Ape test account 0
    ape run deploy --network ethereum:sepolia:node --account my-alias --params params.json

The manifest (chain id, addresses, deployment blocks, roles, parameters and ABIs) is what the
oracle, node and API load through protocol.manifest; it goes to deployments/<ecosystem>-<network>.json
unless --out names another file.

Outside a local network the deployment refuses unsafe key settings (one key with several powers, no
timelock, threshold 1, ...; see negawatt.deploy) unless --allow-unsafe is given.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from ape import accounts, project
from ape.cli import ConnectedProviderCommand
from pydantic import ValidationError

from negawatt.deploy import DeployParams, UnsafeDeployment, deploy_all, write_manifest


def _deployer(choice: str | None, network_name: str):
    if choice is None:
        if network_name != "local":
            raise click.BadParameter("--account is required outside the local network", param_hint="--account")
        return accounts.test_accounts[0]
    if choice.startswith("TEST::"):
        return accounts.test_accounts[int(choice.removeprefix("TEST::"))]
    return accounts.load(choice)


@click.command(cls=ConnectedProviderCommand)
@click.option("--account", "account_choice", default=None, help="Ape account alias, or TEST::N (local only)")
@click.option("--params", "params_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="JSON file of deployment parameters (see negawatt.deploy.DeployParams)")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="where to write the manifest")
@click.option("--allow-unsafe", is_flag=True, default=False,
              help="deploy outside a local network even with unsafe key settings")
def cli(ecosystem, network, account_choice, params_file, out, allow_unsafe):
    """Deploy negawatt and write its deployment manifest."""
    try:
        params = DeployParams(**json.loads(params_file.read_text())) if params_file else DeployParams()
    except (json.JSONDecodeError, ValidationError) as error:
        raise click.BadParameter(f"{params_file}: {error}", param_hint="--params") from error
    if allow_unsafe:
        params = params.model_copy(update={"allow_unsafe": True})
    deployer = _deployer(account_choice, network.name)
    try:
        result = deploy_all(project, deployer, params)
    except UnsafeDeployment as error:
        raise click.UsageError(str(error)) from error
    path = out or Path("deployments") / f"{ecosystem.name}-{network.name}.json"
    write_manifest(result["manifest"], path)
    for name, entry in result["manifest"]["contracts"].items():
        click.echo(f"{name:18} {entry['address']}  (block {entry['block']})")
    click.echo(f"manifest written to {path}")
