"""The `negawatt` console script.

`negawatt node ...` builds only the node's commands, so a gateway's long-running process does not
carry the oracle's libraries (numpy, the baseline engine) in memory; every other command gets the
full `negawatt` app (negawatt.cli).
"""

from __future__ import annotations

import sys


def main() -> None:
    """Run the command line."""
    if len(sys.argv) > 1 and sys.argv[1] == "node":
        import typer

        from node.cli import node_app

        lean = typer.Typer(name="negawatt", no_args_is_help=True)
        lean.add_typer(node_app, name="node")
        lean()
        return
    from negawatt.cli import app

    app()
