"""Reading a role's TOML configuration file the same way everywhere.

The file is read and parsed, relative paths in it are taken relative to the file's folder, a key
also given as an environment variable (PREFIX + KEY in upper case) is left to the environment,
and validation errors are told as one line naming every field. Files are written the same way
too: `write_toml` writes a role's pydantic model, so what a tool writes is what the role reads.
"""

from __future__ import annotations

import functools
import os
import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError


M = TypeVar("M", bound=BaseModel)


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


def field_problems(error: ValidationError, whole: str = "") -> str:
    """Every invalid field of `error` as "a.b: message; ...", with `whole` naming a model-level one."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or whole}: {e['msg']}" for e in error.errors())


def describe(error: ValidationError, source: Path | str) -> ConfigError:
    """One ConfigError naming every invalid field of `source`."""
    return ConfigError(f"{source}: {field_problems(error)}")


def read_bounded(path: Path, limit: int, what: str, error: type[Exception] = ConfigError) -> bytes:
    """The bytes of `path`, never reading more than `limit` + 1 of them: a larger file, or one that
    cannot be read, raises `error` naming the file and saying it is not `what`."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(limit + 1)
    except OSError as problem:
        raise error(f"{path}: cannot read the {what} ({problem.strerror})") from None
    if len(raw) > limit:
        raise error(f"{path}: larger than {limit} bytes, not a {what}")
    return raw


# ---------------------------------------------------------------------------------------- writing
#
# Every configuration file a tool writes (`negawatt node init`, the devnet's node, oracle and API
# configurations) is written by `write_toml` from the role's own pydantic model, so a file written
# is one the role's loader reads back to the same model. TOML has no null: None values are left out
# (the field keeps its default). Tables come after the keys of their parent, as TOML requires.

_BARE_KEY = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def toml_key(key: str) -> str:
    """A TOML key: bare when it can be, else a quoted string."""
    return key if key and set(key) <= _BARE_KEY else toml_string(key)


def toml_string(text: str) -> str:
    """A TOML basic string; control characters are escaped (TOML allows none of them raw)."""
    out = []
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_value(value: Any) -> str:
    """A TOML inline value (string, integer, float, boolean, array or inline table)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return toml_string(value)
    if isinstance(value, Path):
        return toml_string(str(value))
    if isinstance(value, dict):
        items = [f"{toml_key(str(k))} = {toml_value(v)}" for k, v in value.items() if v is not None]
        return "{ " + ", ".join(items) + " }" if items else "{}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write a {type(value).__name__} to TOML")


def _is_table_array(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and bool(value) and all(isinstance(v, dict) for v in value)


def _table(lines: list[str], prefix: tuple[str, ...], data: dict[str, Any]) -> None:
    """Append `data`'s keys, then its sub-tables and arrays of tables, under the header `prefix`."""
    nested = []
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, dict) or _is_table_array(value):
            nested.append((str(key), value))
        else:
            lines.append(f"{toml_key(str(key))} = {toml_value(value)}")
    for key, value in nested:
        path = (*prefix, key)
        header = ".".join(toml_key(part) for part in path)
        if isinstance(value, dict):
            lines += ["", f"[{header}]"]
            _table(lines, path, value)
        else:
            for element in value:
                lines += ["", f"[[{header}]]"]
                _table(lines, path, element)


def dumps_toml(data: dict[str, Any]) -> str:
    """`data` (str keys; str, int, float, bool, lists and dicts as values) as a TOML document."""
    lines: list[str] = []
    _table(lines, (), data)
    return "\n".join(lines).lstrip("\n") + "\n"


def file_model(model_class: type[M], data: dict[str, Any]) -> M:
    """`data` validated as `model_class`, from `data` alone: a settings model (pydantic-settings)
    does not also take values from the environment, so only what the file is to hold is in it.
    Raises pydantic's ValidationError."""
    if getattr(model_class, "settings_customise_sources", None) is None:
        return model_class.model_validate(data)
    return _from_file_only(model_class)(**data)


@functools.cache
def _from_file_only(model_class: type[M]) -> type[M]:
    """`model_class` with the init arguments as its only settings source (one class per model, so
    two file models of the same class compare equal)."""

    class FromFile(model_class):  # type: ignore[valid-type, misc]
        @classmethod
        def settings_customise_sources(cls, settings_cls, init_settings, **others):  # noqa: ANN001, ANN003, ANN206
            return (init_settings,)

    FromFile.__name__ = FromFile.__qualname__ = model_class.__name__
    return FromFile


def model_toml(model: BaseModel) -> str:
    """The TOML document of `model`: the fields that were given (defaults stay in the code), as JSON
    values (paths as strings)."""
    return dumps_toml(model.model_dump(mode="json", exclude_unset=True, exclude_none=True))


def write_toml(path: Path, model: BaseModel) -> Path:
    """Write `model` as the TOML configuration file `path` (its folder is created); returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(model_toml(model))
    return path
