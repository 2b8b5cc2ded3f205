"""Reading a role's TOML configuration file the same way everywhere.

The file is read and parsed, relative paths in it are taken relative to the file's folder, a key
also given as an environment variable (PREFIX + KEY in upper case) is left to the environment,
and validation errors are told as one line naming every field.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError


class ConfigError(ValueError):
    """A configuration that cannot be used; the message names the file and the field."""


def read_toml(path: Path, missing_hint: str = "") -> dict[str, Any]:
    """The parsed file; ConfigError if it is missing or not TOML."""
    try:
        return tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"no config file at {path}{missing_hint}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path} is not valid TOML: {error}") from None


def rooted(path: Path, value: Any) -> Any:
    """`value` made absolute against the folder of the config file at `path`, if it is a relative path."""
    if isinstance(value, str) and not Path(value).is_absolute():
        return str(path.resolve().parent / value)
    return value


def root_paths(path: Path, data: dict[str, Any], keys: tuple[str, ...]) -> None:
    """Make the path-valued `keys` of `data` absolute against the config file's folder."""
    for key in keys:
        if key in data:
            data[key] = rooted(path, data[key])


def leave_to_environment(data: dict[str, Any], prefix: str) -> None:
    """Drop the keys the environment sets (PREFIX + KEY): the environment wins over the file."""
    for key in list(data):
        if f"{prefix}{key.upper()}" in os.environ:
            data.pop(key)


def describe(error: ValidationError, source: Path | str) -> ConfigError:
    """One ConfigError naming every invalid field of `source`."""
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in error.errors())
    return ConfigError(f"{source}: {problems}")
