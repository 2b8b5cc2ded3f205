"""How every role reads an address from outside: 0x + 40 hex digits, matched in full (a trailing
newline is not part of an address), and a mixed-case address must carry a valid EIP-55 checksum.
The result is always the checksummed form, so stored and compared addresses agree."""

from __future__ import annotations

import re

from eth_utils import is_checksum_address, to_checksum_address

ADDRESS_PATTERN = re.compile(r"0x[0-9a-fA-F]{40}")
HEX_BYTES_PATTERN = re.compile(r"0x(?:[0-9a-fA-F]{2})*")


def checksummed(value: str) -> str:
    """The checksummed address `value` spells; ValueError says what is wrong with it."""
    if not isinstance(value, str) or not ADDRESS_PATTERN.fullmatch(value):
        raise ValueError("must be a 0x-prefixed 20-byte hex address")
    body = value[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise ValueError("mixed-case address with an invalid EIP-55 checksum")
    return to_checksum_address(value)


def hex_bytes(value: str) -> bytes:
    """The bytes of a 0x-prefixed even-length hex string; ValueError otherwise."""
    if not isinstance(value, str) or not HEX_BYTES_PATTERN.fullmatch(value):
        raise ValueError("must be 0x-prefixed hex bytes")
    return bytes.fromhex(value[2:])
