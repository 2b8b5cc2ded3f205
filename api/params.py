"""Validation of path and query values that FastAPI's types do not cover (addresses, digests, kinds).
Each failure is an ApiProblem 400 naming the parameter and what was wrong. Kinds are protocol.kinds'
(names, numbers and the `other` alias of `household`)."""

from __future__ import annotations

import re

from eth_utils import is_checksum_address, to_checksum_address

from api.problems import ApiProblem, Reason
from protocol.kinds import ALIASES, KIND_NUMBERS, MAX_KIND, parse_kind

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_DIGEST = re.compile(r"^0x[0-9a-fA-F]{64}$")
_KIND_WORDS = (*KIND_NUMBERS, *ALIASES)
KIND_WORDS: tuple[str, ...] = (*(str(int(n)) for n in KIND_NUMBERS.values()), *_KIND_WORDS)  # what `kind` takes


def address(value: str, name: str) -> str:
    """A checksummed address from 0x + 40 hex digits (all lower, all upper or valid EIP-55 mixed case)."""
    if not _ADDRESS.fullmatch(value):
        raise ApiProblem(400, Reason.INVALID_ADDRESS, "Invalid address", f"{name}: {value[:80]!r} is not 0x + 40 hex digits")
    body = value[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise ApiProblem(400, Reason.INVALID_ADDRESS, "Invalid address", f"{name}: {value!r} fails its EIP-55 checksum")
    return to_checksum_address(value)


def digest(value: str, name: str = "digest") -> str:
    """A 32-byte hex digest, lower case."""
    if not _DIGEST.fullmatch(value):
        raise ApiProblem(400, Reason.INVALID_DIGEST, "Invalid digest", f"{name}: {value[:80]!r} is not 0x + 64 hex digits")
    return value.lower()


def kind(value: str | None) -> int | None:
    """A device kind by number (0..6), name (ev_charger, heat_pump, hvac, battery, water_heater, household,
    site_meter) or alias (`other` for household), as protocol.kinds.parse_kind reads it."""
    if value is None:
        return None
    try:
        return int(parse_kind(value))
    except ValueError:
        raise ApiProblem(400, Reason.INVALID_PARAMETER, "Invalid kind",
                         f"kind: {value[:40]!r} is not one of 0..{int(MAX_KIND)} or {', '.join(_KIND_WORDS)}") from None
