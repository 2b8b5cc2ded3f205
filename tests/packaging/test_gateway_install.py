"""A home gateway's install: the wheel built from the sources, `negawatt[node]` installed from it
into a fresh venv with the locked versions, and that venv running a real node against anvil.

The rule (issue 15): `pip install negawatt[node]` brings what a gateway runs and nothing of the other
roles or of the repository's tooling (no Ape, pytest, hypothesis, matplotlib, numpy, FastAPI, ...),
and the gateway's commands work there: `negawatt node --help`, `init`, `register`, `status` and
`run` (its metrics over HTTP), with the keystore password read from a credentials file as the
systemd unit and the compose file in deploy/ pass it. A command of another role says in one line
which extra it needs.

The test prints the venv's size and how long each step took (pip may use the registry and its cache;
with the cache warm it all takes well under two minutes).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest
from waiting import wait_for

from negawatt.localchain import REPO, free_port, fund_owner

# Distributions a gateway must not carry: the other roles' libraries and the repository's tooling.
NOT_ON_A_GATEWAY = {"eth-ape", "ape-solidity", "ape-foundry", "py-solc-x", "pytest", "hypothesis",
                    "matplotlib", "slither-analyzer", "schemathesis", "openapi-spec-validator",
                    "check-jsonschema", "numpy", "pandas", "fastapi", "sqlalchemy", "sqlmodel", "psycopg",
                    "alembic", "uvicorn", "siwe"}
MODULES_ABSENT = ["ape", "pytest", "hypothesis", "matplotlib", "numpy", "fastapi", "solcx"]
SIZE_BOUND_MB = 300  # generous: about 130 MB today (web3's tree, cryptography for DSMR P1, pydantic)
PASSWORD = "gateway-pw"

timings: dict[str, float] = {}


def _run(args: list, what: str, **kwargs) -> subprocess.CompletedProcess:
    """Run a command to completion; fail with its output's tail if it does not exit 0."""
    started = time.monotonic()
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    timings[what] = round(time.monotonic() - started, 1)
    assert result.returncode == 0, \
        f"{what} failed ({result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _copy_sources(into: Path) -> Path:
    """The files the wheel is built from (pyproject.toml, the readme, the packages it lists), copied so
    the build leaves nothing in the working tree and uses nothing outside what it declares."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    source = into / "src"
    source.mkdir()
    shutil.copy2(REPO / "pyproject.toml", source / "pyproject.toml")
    shutil.copy2(REPO / pyproject["project"]["readme"], source / pyproject["project"]["readme"])
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]:
        package = pattern.rstrip("*")
        if (REPO / package).is_dir():
            shutil.copytree(REPO / package, source / package, ignore=ignore)
    return source


def _size_mb(folder: Path) -> float:
    """Bytes of the regular files under `folder` (symlinks not followed), in MB."""
    files = (path for path in folder.rglob("*") if path.is_file() and not path.is_symlink())
    return sum(path.lstat().st_size for path in files) / 1e6


def gateway_env(**extra: str) -> dict[str, str]:
    """The environment of a gateway's commands: this machine's, without the repository's venv or
    Python path, without a password variable (the password comes from a file), plus `extra`."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("NEGAWATT_")}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def gateway(tmp_path_factory) -> Path:
    """A fresh venv holding only `negawatt[node]`, installed from the wheel with the locked versions."""
    work = tmp_path_factory.mktemp("gateway")
    source = _copy_sources(work)
    wheels = work / "wheels"
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", wheels, source],
         "build the wheel")
    (wheel,) = wheels.glob("negawatt-*.whl")
    venv = work / "venv"
    # No pip inside: the repository's pip installs into it (--python), so the size is the gateway's own.
    _run([sys.executable, "-m", "venv", "--without-pip", venv], "create the venv")
    _run([sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "--quiet",
          "-c", REPO / "requirements.lock", f"{wheel}[node]"], "pip install negawatt[node]")
    return venv


def test_a_node_install_has_the_node_and_nothing_heavy(gateway, tmp_path):
    python, negawatt = gateway / "bin" / "python", gateway / "bin" / "negawatt"
    env = gateway_env()

    names = "import importlib.metadata as m, json; print(json.dumps([d.metadata['Name'] for d in m.distributions()]))"
    listed = _run([python, "-c", names],
                  "list the distributions", env=env, cwd=tmp_path)
    installed = {name.lower() for name in json.loads(listed.stdout)}
    assert "negawatt" in installed and {"web3", "pymodbus", "ocpp", "aiomqtt", "dsmr-parser"} <= installed
    assert installed.isdisjoint(NOT_ON_A_GATEWAY), installed & NOT_ON_A_GATEWAY
    for module in MODULES_ABSENT:
        probe = subprocess.run([python, "-c", f"import {module}"], capture_output=True, text=True, env=env,
                               cwd=tmp_path)
        assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr, f"{module} is on a gateway"

    help_ = _run([negawatt, "node", "--help"], "negawatt node --help", env=env, cwd=tmp_path)
    assert all(command in help_.stdout for command in ("init", "register", "status", "claim", "run"))

    # Another role's command says which extra it needs, in one line, without a traceback.
    oracle = subprocess.run([negawatt, "oracle", "run", "--config", "oracle.toml"], capture_output=True,
                            text=True, env=env, cwd=tmp_path)
    assert oracle.returncode == 2 and "Traceback" not in oracle.stderr, oracle.stderr
    assert oracle.stderr.strip().count("\n") == 0 and "pip install 'negawatt[oracle]'" in oracle.stderr

    size = _size_mb(gateway)
    print(f"\nnegawatt[node] venv: {size:.0f} MB, {len(installed)} distributions; steps (s): {timings}")
    assert size < SIZE_BOUND_MB


def test_the_installed_node_registers_and_runs_on_a_real_chain(gateway, devnet, tmp_path):
    negawatt = gateway / "bin" / "negawatt"
    home = tmp_path / "gateway"
    password_file = tmp_path / "credentials" / "node-password"  # as systemd's LoadCredential= exposes it
    password_file.parent.mkdir()
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)

    # `node init` takes the password from a variable; every later command reads the file.
    init = _run([negawatt, "node", "init", "--dir", home, "--device", "ev_charger:7400", "--device",
                 "heat_pump:3000", "--rpc-url", devnet.rpc_url, "--manifest", devnet.manifest_path,
                 "--interval", "60"],
                "negawatt node init", env=gateway_env(NEGAWATT_NODE_PASSWORD=PASSWORD), cwd=tmp_path)
    owner = init.stdout.split("owner: ")[1].split()[0]
    assert sorted(p.name for p in (home / "keys").iterdir()) == ["device-0.json", "device-1.json",
                                                                 "owner.json"]
    assert PASSWORD not in (home / "node.toml").read_text()
    fund_owner(devnet.web3(), devnet.manifest(), owner, 2_000 * 10**18)

    config = home / "node.toml"
    env = gateway_env(NEGAWATT_NODE_PASSWORD_FILE=str(password_file), NEGAWATT_NODE_CONFIRMATIONS="0")
    register = _run([negawatt, "node", "register", "--config", config], "negawatt node register", env=env,
                    cwd=tmp_path)
    assert register.stdout.count("registered (") == 2, register.stdout
    status = _run([negawatt, "node", "status", "--json", "--config", config], "negawatt node status", env=env,
                  cwd=tmp_path)
    body = json.loads(status.stdout)
    assert body["owner"] == owner and [d["registered"] for d in body["devices"]] == [True, True]

    port = free_port()
    started = time.monotonic()
    run = subprocess.Popen([negawatt, "node", "run", "--config", config], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, cwd=tmp_path,
                           env={**env, "NEGAWATT_NODE_METRICS_PORT": str(port)})
    try:
        devices = [d["address"] for d in body["devices"]]

        def metered() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
                    text = answer.read().decode()
            except OSError:
                return False
            return all(f'negawatt_node_device_power_watts{{device="{d}"' in text for d in devices)

        wait_for(lambda: run.poll() is not None or metered(), timeout=60, what="the node's metrics")
        assert run.poll() is None, run.stdout.read()
        timings["negawatt node run: first metrics"] = round(time.monotonic() - started, 1)
        run.send_signal(signal.SIGTERM)
        output, _ = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert run.returncode == 0 and "Traceback" not in output, output
    print(f"\ngateway on anvil, steps (s): {timings}")
