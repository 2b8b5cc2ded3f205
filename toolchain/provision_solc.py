"""Provide the Solidity compiler the project pins, inside the repository.

A native solc is preferred: py-solc-x installs it into the project-local SOLCX_BINARY_PATH when
its download server is reachable. Where it is not (this project's CI has only package
registries), the project's solcjs shim (`toolchain/solc-shim.js`, compiling with npm's `solc`)
is installed there under the name py-solc-x and ape-solidity look for. Idempotent: a compiler
that is already in place and answers with the right version is kept.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NATIVE_INSTALL_TIMEOUT_S = 60


def pinned_version() -> str:
    """The solc version pinned by package.json's `solc` dependency (solcjs carries the same)."""
    package = json.loads((REPO / "package.json").read_text())
    return package["dependencies"]["solc"]


def binary_path() -> Path:
    """The project-local folder py-solc-x searches (SOLCX_BINARY_PATH)."""
    return Path(os.environ.get("SOLCX_BINARY_PATH", REPO / ".toolchain" / "solcx"))


def reported_version(binary: Path) -> str | None:
    """The version a compiler binary prints for `--version`, or None if it does not run."""
    try:
        out = subprocess.run(
            [str(binary), "--version"], capture_output=True, text=True, timeout=60, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(\d+\.\d+\.\d+)", out)
    return match.group(1) if match else None


def is_shim(binary: Path) -> bool:
    """Whether the installed compiler is the solcjs shim rather than a native binary."""
    try:
        return binary.read_bytes()[:2] == b"#!"
    except OSError:
        return False


def try_native(version: str, folder: Path) -> bool:
    """Ask py-solc-x for a native build; False when its server cannot be reached in time."""
    code = (
        "import solcx, sys; "
        f"solcx.install_solc({version!r}, show_progress=False, solcx_binary_path={str(folder)!r})"
    )
    try:
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            timeout=NATIVE_INSTALL_TIMEOUT_S,
            check=True,
            env={**os.environ, "SOLCX_BINARY_PATH": str(folder)},
        )
    except (subprocess.SubprocessError, OSError):
        return False
    return reported_version(folder / f"solc-v{version}") == version


def install_shim(version: str, target: Path) -> None:
    """Install the solcjs shim as `solc-v<version>`, bound to the project's npm solc."""
    solcjs = REPO / "node_modules" / "solc"
    if not (solcjs / "package.json").exists():
        raise SystemExit("node_modules/solc is missing: run `npm ci` first (make setup does)")
    node = subprocess.run(["which", "node"], capture_output=True, text=True).stdout.strip()
    if not node:
        raise SystemExit("node is not on PATH: the solcjs shim needs Node.js")
    source = (REPO / "toolchain" / "solc-shim.js").read_text()
    source = source.replace("#!/usr/bin/env node", f"#!{node}", 1)
    source = source.replace("__NEGAWATT_SOLCJS__", str(solcjs).replace("\\", "\\\\"))
    target.write_text(source)
    target.chmod(target.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def main() -> int:
    """Make `solc-v<pinned>` available in SOLCX_BINARY_PATH and say which kind it is."""
    version = pinned_version()
    folder = binary_path()
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"solc-v{version}"
    if reported_version(target) == version:
        kind = "solcjs shim" if is_shim(target) else "native solc"
        print(f"solc {version}: {kind} already in {folder}")
        return 0
    if target.exists():
        target.unlink()
    if try_native(version, folder):
        print(f"solc {version}: native solc installed by py-solc-x into {folder}")
        return 0
    install_shim(version, target)
    if reported_version(target) != version:
        print(f"solc {version}: the solcjs shim at {target} did not answer --version", file=sys.stderr)
        return 1
    print(f"solc {version}: no native build reachable; using the solcjs shim at {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
