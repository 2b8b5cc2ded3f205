"""A driver's password comes from an environment variable or a file, never from node.toml in clear
(as the node's own keystore password). A file's one trailing newline is not part of the password."""

from __future__ import annotations

import os
from pathlib import Path


def read_secret(env: str | None, file: Path | None, what: str) -> bytes | None:
    """The secret in environment variable `env` or in `file` (None if neither is configured);
    ValueError naming the variable or the file if it is unset, unreadable or empty."""
    if env:
        value = os.environ.get(env)
        if value is None:
            raise ValueError(f"{what}: the environment variable {env} is not set")
        secret = value.encode()
        where = f"the environment variable {env}"
    elif file is not None:
        try:
            secret = Path(file).read_bytes()
        except OSError as error:
            raise ValueError(f"{what}: cannot read {file} ({error.strerror})") from None
        secret = secret.removesuffix(b"\n").removesuffix(b"\r")
        where = str(file)
    else:
        return None
    if not secret:
        raise ValueError(f"{what}: {where} is empty")
    return secret
