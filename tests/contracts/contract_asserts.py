"""Strict assertions for the contract tests.

`ape.reverts` can pass without checking anything when Ape cannot decode the revert (seen on py-evm
when the error data holds a quote byte, on anvil for constructor reverts, and for errors raised by a
token inside another contract's call), and it ignores keyword names that are not the error's inputs.
`reverts` here decodes the raw revert data itself in those cases and checks every named input.
`chain.isolate()` must not wrap assertions: Ape 0.8's isolate() swallows every exception raised
inside it. `isolated` snapshots and always restores instead.
"""

from __future__ import annotations

import ast
from contextlib import contextmanager

import ape
from ape.exceptions import CustomError
from eth_abi import decode
from eth_utils import keccak, to_checksum_address


@contextmanager
def reverts(error, **inputs):
    """`ape.reverts`, made strict: the revert must be exactly `error` (decoded by Ape, or from the raw
    revert data when Ape could not decode it) and carry every named input with the given value."""
    with ape.reverts(error, **inputs) as info:
        yield info
    actual = error_inputs(info.value, error.abi)
    for name, value in inputs.items():
        assert name in actual, f"{error.abi.name} has no input {name!r}"
        assert actual[name] == value, f"{error.abi.name}.{name} is {actual[name]!r}, expected {value!r}"


def error_inputs(err, abi) -> dict:
    """The named inputs of the custom error `err` raised, checked to be the error `abi` describes."""
    if isinstance(err, CustomError):
        assert err.abi.selector == abi.selector, f"reverted with {err.abi.selector}, expected {abi.selector}"
        return dict(err.inputs)
    data = revert_data(err)
    assert data[:4] == keccak(text=abi.selector)[:4], f"reverted with {err!r}, expected {abi.selector}"
    types = [i.canonical_type for i in abi.inputs]
    decoded = decode(types, data[4:])
    values = [to_checksum_address(v) if t == "address" else v for t, v in zip(types, decoded, strict=True)]
    return dict(zip([i.name for i in abi.inputs], values, strict=True))


def revert_data(err) -> bytes:
    """The raw revert data of a contract error Ape could not decode."""
    message = err.revert_message or ""
    if message.startswith(("b'", 'b"')):
        return ast.literal_eval(message)
    assert message.startswith("0x"), f"no revert data in {err!r}"
    return bytes.fromhex(message[2:])


@contextmanager
def isolated(chain):
    """One hypothesis example's chain state, rolled back afterwards. Not `chain.isolate()`: Ape's
    isolate() catches every Exception raised inside it (a failing example would pass silently), and
    its reset of the pending timestamp can collide with the restored head block on py-evm."""
    snapshot = chain.snapshot()
    try:
        yield
    finally:
        chain.restore(snapshot)


def logs(tx):
    """(contract, event name, arguments) of every event a transaction emitted."""
    return [(log.contract_address, log.event_name, dict(log.event_arguments)) for log in tx.events]
