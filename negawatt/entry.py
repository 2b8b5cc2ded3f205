"""The `negawatt` console script.

`negawatt node|oracle|api|buyer ...` builds only that role's commands, so a role's long-running
process carries no other role's libraries (a gateway no numpy, no baseline engine), and an install
with only that role's extra (`pip install negawatt[node]`, ...) runs it; every other command
(devnet, manifest, merkle, keystore, version, --help) gets the full `negawatt` app (negawatt.cli).

Each role's libraries come with its extra (pyproject.toml: node, oracle, api, buyer, devnet, dev). A
command whose role's extra is not installed stops with one line naming the missing module and the
`pip install 'negawatt[...]'` that brings it, not a traceback.
"""

from __future__ import annotations

import sys

# The first-party packages: a missing one of these is a broken install, not a missing extra.
_OWN_PACKAGES = frozenset({"negawatt", "protocol", "node", "oracle", "api", "buyer", "bench", "vtn"})
# The role groups that run on their own: module and Typer app of each (the extra has the role's name).
_ROLES = {"node": ("node.cli", "node_app"), "oracle": ("oracle.cli", "oracle_app"),
          "api": ("api.cli", "api_app"), "buyer": ("buyer.cli", "buyer_app")}
# The extra that brings each command group's libraries (any other group: the repository's [dev]).
_EXTRAS = {**{role: role for role in _ROLES}, "devnet": "devnet"}


def main() -> None:
    """Run the command line."""
    group = sys.argv[1] if len(sys.argv) > 1 else ""
    try:
        _app_for(group)()
    except ModuleNotFoundError as error:
        missing = (error.name or "").partition(".")[0]
        if not missing or missing in _OWN_PACKAGES:
            raise
        sys.stderr.write(missing_extra_message(group, missing) + "\n")
        raise SystemExit(2) from None


def _app_for(group: str):
    """The Typer app for `negawatt GROUP ...`: only that role's commands for a role, else the full app."""
    if group not in _ROLES:
        from negawatt.cli import app

        return app
    import importlib

    import typer

    module, name = _ROLES[group]
    lean = typer.Typer(name="negawatt", no_args_is_help=True)
    lean.add_typer(getattr(importlib.import_module(module), name), name=group)
    return lean


def missing_extra_message(group: str, module: str) -> str:
    """The one-line error for a command whose role's extra is not installed: what is missing and the
    install that brings it (a gateway's `negawatt[node]` has only the `negawatt node` commands)."""
    extra = _EXTRAS.get(group, "dev")
    command = f"`negawatt {group}`" if group in _EXTRAS else "this command"
    return (f"error: {command} needs the Python module {module!r}, which this install lacks: "
            f"pip install 'negawatt[{extra}]' (each role's extra has only that role's commands)")
