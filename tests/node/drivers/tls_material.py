"""Throwaway TLS material for the driver security tests, made with the `openssl` CLI: a CA, a server
certificate it signed for localhost and 127.0.0.1, a client certificate it signed, and a second,
untrusted CA (with a server certificate of its own); and a real Mosquitto broker secured with them."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from negawatt.localchain import free_port
from node.drivers.peers.mosquitto import start_broker, write_password_file

OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
BROKER_USERS = {"node": "node-broker-password-1", "plug": "plug-broker-password-2"}
EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class TlsMaterial:
    """Paths of the PEM files."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path
    other_server_cert: Path
    other_server_key: Path


def _run(*args: str | Path) -> None:
    subprocess.run([OPENSSL, *map(str, args)], check=True, capture_output=True)


def _ca(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.pem", folder / f"{name}.key"
    _run("req", "-x509", *EC, "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN=negawatt test {name}",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    return cert, key


def _leaf(folder: Path, name: str, ca: tuple[Path, Path], usage: str) -> tuple[Path, Path]:
    cert, key, csr, ext = (folder / f"{name}{suffix}" for suffix in (".pem", ".key", ".csr", ".ext"))
    ext.write_text("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                   f"extendedKeyUsage={usage}\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n"
                   "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n")
    _run("req", *EC, "-keyout", key, "-out", csr, "-subj", f"/CN={name}")
    _run("x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial", "-out", cert, "-days", "2",
         "-extfile", ext)
    return cert, key


def make_tls_material(folder: Path) -> TlsMaterial:
    """Generate everything in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, other = _ca(folder, "ca"), _ca(folder, "other-ca")
    server, client = _leaf(folder, "server", ca, "serverAuth"), _leaf(folder, "client", ca, "clientAuth")
    other_server = _leaf(folder, "other-server", other, "serverAuth")
    return TlsMaterial(ca[0], *server, *client, other[0], *other_server)


def start_secure_broker(folder, tls_material: TlsMaterial, password_file=None, require_certificate=False):
    """A real Mosquitto broker with a TLS 1.2+ listener and a password file (BROKER_USERS): (port, process)."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    if password_file is None:
        password_file = write_password_file(folder / "passwd", BROKER_USERS)
    process = start_broker(folder, port, tls=(tls_material.ca, tls_material.server_cert, tls_material.server_key),
                           password_file=password_file, require_certificate=require_certificate)
    return port, process
