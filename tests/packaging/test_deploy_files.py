"""deploy/: the compose file, the systemd units and the Dockerfile, checked with real tools where
this machine has them (no Docker daemon or image registry here, so the image is not built):

- deploy/compose.yaml validates against the Compose Specification's JSON schema (the copy that
  check-jsonschema ships), its NEGAWATT_* variables are settings the oracle and the node really have
  (loaded through their own config loaders), and every keystore password is a secret file;
- the systemd units pass `systemd-analyze verify` with no warning, their command lines parse, and
  the password file each points its role at is the credential it loads;
- the Dockerfile copies every package the wheel is built from (and its .dockerignore lets exactly
  those in) and accepts exactly the roles.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from negawatt.localchain import REPO

DEPLOY = REPO / "deploy"
UNITS = {role: DEPLOY / "systemd" / f"negawatt-{role}.service" for role in ("node", "oracle")}
NEGAWATT = Path(sys.executable).parent / "negawatt"  # the repository's install of the same console script


def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _example_env() -> dict[str, str]:
    """The uncommented NAME=value lines of deploy/negawatt.env.example (what deploy/.env starts from)."""
    pairs = {}
    for line in (DEPLOY / "negawatt.env.example").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            pairs[name] = value
    return pairs


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${NAME}, ${NAME:-default} and ${NAME:?message}, from `env`; a missing required one fails."""
    def one(match: re.Match) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3)
        if name in env:
            return env[name]
        assert op != ":?", f"{name} is required by compose.yaml but not in negawatt.env.example"
        return arg if op == ":-" else ""
    return re.sub(r"\$\{([A-Z_][A-Z0-9_]*)(?:(:[-?])([^}]*))?\}", one, str(value))


def _check_compose(path: Path) -> subprocess.CompletedProcess:
    """check-jsonschema's command line on `path`, with the Compose Specification schema it ships."""
    return subprocess.run([sys.executable, "-m", "check_jsonschema", "--builtin-schema",
                           "vendor.compose-spec", str(path)], capture_output=True, text=True)


def test_compose_file_follows_the_compose_specification(tmp_path):
    checked = _check_compose(DEPLOY / "compose.yaml")
    assert checked.returncode == 0 and "ok" in checked.stdout, checked.stdout + checked.stderr

    # The same validator rejects a compose file with a wrong value where this one has a right one.
    broken = tmp_path / "compose.yaml"
    broken.write_text((DEPLOY / "compose.yaml").read_text().replace("condition: service_healthy",
                                                                    "condition: healthy"))
    rejected = _check_compose(broken)
    assert rejected.returncode != 0 and "depends_on" in rejected.stdout


def test_compose_services_configure_the_roles_and_keep_passwords_in_secrets(tmp_path, monkeypatch):
    from node.config import NodeConfig
    from node.config import load_config as load_node
    from oracle.config import OracleConfig
    from oracle.config import load_config as load_oracle

    compose, example = _compose(), _example_env()
    services = compose["services"]
    for role in ("oracle", "node"):
        service = services[role]
        assert service["build"]["args"]["ROLE"] == role
        build = service["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
        environment = {name: _interpolate(value, example) for name, value in service["environment"].items()}
        assert not any(name.endswith("_PASSWORD") for name in environment), "a password in the environment"
        prefix, model = f"NEGAWATT_{role.upper()}_", OracleConfig if role == "oracle" else NodeConfig
        unknown = {name for name in environment if name.removeprefix(prefix).lower() not in model.model_fields}
        assert not unknown, f"not settings of the {role}: {unknown}"  # pydantic-settings would ignore them
        secret = environment[f"NEGAWATT_{role.upper()}_PASSWORD_FILE"].removeprefix("/run/secrets/")
        assert secret in service["secrets"] and compose["secrets"][secret]["file"].startswith("./secrets/")
        assert service["volumes"] == [f"{role}-data:/data"] and f"{role}-data" in compose["volumes"]
        for name in list(os.environ):
            if name.startswith("NEGAWATT_") or name == "DATABASE_URL":
                monkeypatch.delenv(name)
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        if role == "oracle":
            config = load_oracle(None)  # everything from the environment: the TOML may hold only economics
            assert config.database_url == (f"postgresql://negawatt:{example['POSTGRES_PASSWORD']}"
                                           "@postgres:5432/negawatt")
            assert (config.host, config.port) == ("0.0.0.0", 8101)
            assert config.public_url == example["NEGAWATT_ORACLE_PUBLIC_URL"]
        else:
            toml = tmp_path / "node.toml"  # as `negawatt node init` writes it, in the volume
            toml.write_text('owner_keystore = "keys/owner.json"\n[[devices]]\n'
                            'keystore = "keys/device-0.json"\nkind = "ev_charger"\ncapacity_w = 7400\n')
            config = load_node(toml)
            assert config.metrics_port == 9101
        assert config.rpc_url == example["NEGAWATT_RPC_URL"]
        assert config.confirmations == int(example["NEGAWATT_CONFIRMATIONS"])
        assert config.password_file == Path(f"/run/secrets/{secret}")
    assert services["oracle"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    postgres_password = services["postgres"]["environment"]["POSTGRES_PASSWORD"]
    assert _interpolate(postgres_password, example) == example["POSTGRES_PASSWORD"]


def _unit(path: Path) -> dict[str, list[str]]:
    """KEY -> values of a unit file's [Service] and [Unit] lines (systemd allows repeated keys)."""
    values: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


@pytest.mark.parametrize("role", sorted(UNITS))
def test_systemd_unit_verifies_and_reads_the_password_from_its_credential(role, tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing (Debian's systemd package)"
    unit = _unit(UNITS[role])
    (command, *args) = shlex.split(unit["ExecStart"][0])
    assert command == "/opt/negawatt/bin/negawatt" and args[:2] == [role, "run"]

    # The password: LoadCredential=ID:/etc/... and NEGAWATT_<ROLE>_PASSWORD_FILE=%d/ID (the credentials
    # directory), never a password variable.
    credential, _, source = unit["LoadCredential"][0].partition(":")
    assert source == f"/etc/negawatt/credentials/{credential}"
    assert f"NEGAWATT_{role.upper()}_PASSWORD_FILE=%d/{credential}" in unit["Environment"]
    assert not any(v.startswith(f"NEGAWATT_{role.upper()}_PASSWORD=") for v in unit["Environment"])
    assert unit["StateDirectory"] == [f"negawatt-{role}"]
    assert args[-1].startswith(f"/var/lib/negawatt-{role}/")

    # systemd-analyze verify checks the binary exists: point the copy at this repository's install.
    copy = tmp_path / UNITS[role].name
    copy.write_text(UNITS[role].read_text().replace("/opt/negawatt/bin/negawatt", str(NEGAWATT)))
    verified = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True)
    assert verified.returncode == 0 and verified.stderr.strip() == "" and verified.stdout.strip() == "", \
        verified.stdout + verified.stderr
    # ... and it does report a bad line (it exits 0 on warnings, hence the empty-output check above).
    bad = tmp_path / f"bad-{UNITS[role].name}"
    bad.write_text(copy.read_text().replace("RestartSec=10", "RestartSec=ten"))
    warned = subprocess.run([analyze, "verify", str(bad)], capture_output=True, text=True)
    assert "ignoring: ten" in warned.stderr

    # The command line is one the installed CLI accepts.
    parsed = subprocess.run([str(NEGAWATT), *args, "--help"], capture_output=True, text=True)
    assert parsed.returncode == 0, parsed.stdout + parsed.stderr


def test_dockerfile_copies_every_package_and_takes_the_roles():
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = {p.rstrip("*") for p in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = set(re.findall(r"^COPY (\w+) \1$", dockerfile, re.MULTILINE))
    assert copied == packages
    # ... and its build context (deploy/Dockerfile.dockerignore) lets exactly those folders in.
    allowed = (DEPLOY / "Dockerfile.dockerignore").read_text().splitlines()
    assert {line[1:].rstrip("/") for line in allowed if line.startswith("!") and line.endswith("/")} == packages
    assert "COPY pyproject.toml README.md ./" in dockerfile and "COPY requirements.lock" in dockerfile
    roles = re.search(r'case "\$\{ROLE\}" in ([\w|]+)\)', dockerfile).group(1).split("|")
    extras = pyproject["project"]["optional-dependencies"]
    assert set(roles) == {"node", "oracle", "api", "buyer"} <= set(extras)
    assert "pip install --no-cache-dir -c /tmp/requirements.lock" in dockerfile
    assert '"$(ls /tmp/wheels/negawatt-*.whl)[${ROLE}]"' in dockerfile
    assert re.search(r"^USER negawatt$", dockerfile, re.MULTILINE)
