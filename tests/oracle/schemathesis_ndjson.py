"""schemathesis hooks for the oracle's run (tests/oracle/test_oracle_schemathesis.py): how to put a
generated body of an `application/x-ndjson` operation (POST /v1/meter-batches/bulk) on the wire.

The bulk route's body is documented as a string (NDJSON text): a string goes as its UTF-8 bytes,
bytes as they are, and a value of another type (the fuzzer's negative data) as one JSON line."""

from __future__ import annotations

import json
from typing import Any

import schemathesis


@schemathesis.serializer("application/x-ndjson")
def ndjson(_context: Any, value: Any) -> dict[str, Any]:
    """The request body for `value` (see the module docstring)."""
    if isinstance(value, bytes):
        return {"data": value}
    if isinstance(value, str):
        return {"data": value.encode("utf-8", "surrogatepass")}
    return {"data": json.dumps(value).encode() + b"\n"}
