"""Encrypted keystores (eth-account / Web3 Secret Storage) for oracle and node keys.

A key is never stored in clear in a config file and never logged: the keystore JSON is encrypted
with a password that comes from an environment variable or a password file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account


class KeyError_(ValueError):
    """A keystore or its password could not be used; the message says why (never the secret)."""


def write_keystore(path: Path, private_key: bytes | str, password: str, kdf: str = "scrypt",
                   iterations: int | None = None) -> str:
    """Encrypt `private_key` with `password` into `path` (mode 0600); returns the address.

    `iterations` is the KDF cost (scrypt's n, pbkdf2's c); eth-account's default scrypt n = 2^18
    needs 256 MiB of memory to decrypt, too much for a gateway, which uses n = 2^14 (16 MiB).
    """
    if not password:
        raise KeyError_("refusing to write a keystore with an empty password")
    encrypted = Account.encrypt(private_key, password, kdf=kdf, iterations=iterations)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
        json.dump(encrypted, handle)
    tmp.replace(path)
    return Account.from_key(private_key).address


def read_password(env_var: str | None = None, password_file: Path | None = None) -> str:
    """The keystore password from `env_var` (if set in the environment) or else from `password_file`."""
    if env_var and os.environ.get(env_var):
        return os.environ[env_var]
    if password_file is not None:
        try:
            return password_file.read_text().rstrip("\n")
        except OSError as error:
            raise KeyError_(f"cannot read the password file {password_file}: {error.strerror}") from None
    raise KeyError_(f"no keystore password: set {env_var or 'the password variable'} or give a password file")


def load_key(path: Path, password: str) -> bytes:
    """Decrypt the keystore at `path`; raises KeyError_ with a reason (wrong password, bad file)."""
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise KeyError_(f"no keystore at {path}") from None
    except (OSError, json.JSONDecodeError) as error:
        raise KeyError_(f"{path} is not a keystore: {error}") from None
    try:
        return bytes(Account.decrypt(data, password))
    except ValueError as error:
        if "MAC mismatch" in str(error):
            raise KeyError_(f"wrong password for the keystore {path}") from None
        raise KeyError_(f"{path} is not a usable keystore: {error}") from None
