"""TLS for the drivers that reach a device over the network: the rule is TLS 1.2 or later, the peer's
certificate verified against a configured CA (a client always checks the server's host name), and
a configuration error (a missing file, a key that does not fit its certificate) told at start-up
with the file's name. `ssl` is imported only when a TLS context is built, so a node without TLS
devices never loads it for the drivers.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

# TLS 1.2 suites: the OCPP security whitepaper's (ECDHE/RSA with AES-GCM) and ChaCha20; TLS 1.3
# suites are not affected by this string and stay OpenSSL's (all AEAD).
TLS12_CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20:AES128-GCM-SHA256:AES256-GCM-SHA384"


def is_loopback(host: str) -> bool:
    """Whether `host` names this machine only (127.0.0.0/8, ::1 or localhost): traffic never leaves it."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def readable_file(path: Path) -> Path:
    """`path` if it is a readable file; ValueError naming it otherwise (a pydantic validator)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    try:
        with path.open("rb"):
            pass
    except OSError as error:
        raise ValueError(f"{path}: cannot be read ({error.strerror})") from None
    return path


def server_context(cert_file: Path, key_file: Path) -> Any:
    """An ssl.SSLContext for a TLS server (TLS 1.2+), with `cert_file` (PEM chain) and its `key_file`;
    ValueError naming the files if they cannot be loaded."""
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    _load_chain(context, cert_file, key_file)
    return context


def client_context(ca_file: Path | None, cert_file: Path | None = None, key_file: Path | None = None) -> Any:
    """An ssl.SSLContext for a TLS client (TLS 1.2+, host name checked) trusting `ca_file` (the system's
    CAs if None), presenting `cert_file`/`key_file` if given; ValueError naming a file that cannot be loaded."""
    import ssl

    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (ssl.SSLError, OSError) as error:
        raise ValueError(f"{ca_file}: not a PEM CA certificate ({_reason(error)})") from None
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(TLS12_CIPHERS)
    if cert_file is not None and key_file is not None:
        _load_chain(context, cert_file, key_file)
    return context


def _load_chain(context: Any, cert_file: Path, key_file: Path) -> None:
    import ssl

    try:
        context.load_cert_chain(str(cert_file), str(key_file))
    except (ssl.SSLError, OSError) as error:
        raise ValueError(f"{cert_file} with key {key_file}: not a PEM certificate and its matching "
                         f"unencrypted key ({_reason(error)})") from None


def _reason(error: BaseException) -> str:
    return getattr(error, "reason", None) or getattr(error, "strerror", None) or str(error)
