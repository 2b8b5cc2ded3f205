"""schemathesis hooks for the API run (tests/api/test_api_schemathesis.py loads them via SCHEMATHESIS_HOOKS).

An address is documented as `^0x[0-9a-fA-F]{40}$`, and the API also requires a mixed-case address to
carry its EIP-55 checksum, which no JSON Schema can say. So every generated value that matches the
address pattern is sent checksummed: the fuzzer's "valid" addresses are then valid, and values that
break the pattern (its negative cases) are left exactly as generated.
"""

from __future__ import annotations

import re
from typing import Any

import schemathesis
from eth_utils import to_checksum_address

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")


def _checksummed(values: dict[str, Any] | None) -> dict[str, Any] | None:
    if not values:
        return values
    return {name: to_checksum_address(value) if isinstance(value, str) and _ADDRESS.fullmatch(value) else value
            for name, value in values.items()}


@schemathesis.hook
def map_path_parameters(context: Any, path_parameters: dict[str, Any]) -> dict[str, Any] | None:
    """Checksum the pattern-matching addresses in the path."""
    return _checksummed(path_parameters)


@schemathesis.hook
def map_query(context: Any, query: dict[str, Any]) -> dict[str, Any] | None:
    """Checksum the pattern-matching addresses in the query."""
    return _checksummed(query)
