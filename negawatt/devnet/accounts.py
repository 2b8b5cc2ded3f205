"""`RUN_DIR/accounts.json`: the devnet accounts a newcomer uses, written by `negawatt devnet up`.

It names a buyer (anvil's second account, with the gas money anvil gives it and no mUSD until
`negawatt devnet fund`) and a spare device owner (a fresh key, unfunded), each with its address, its
encrypted keystore and the environment variable the tool that uses it reads the password from. It
is a devnet: the keystores' password is written in the file too (and printed by `devnet up`), so
that nobody has to read code to use them. Never do this with a key that holds anything of value.

Format (version 1), at most MAX_ACCOUNTS_BYTES:

    {"version": 1, "network": "devnet", "chain_id": 31337,
     "password": "<the keystores' password>",
     "buyer": {"address": "0x…", "keystore": "/abs/buyer-keystore.json", "password_env": "NEGAWATT_BUYER_PASSWORD"},
     "owner": {"address": "0x…", "keystore": "/abs/accounts/owner-keystore.json", "password_env": "NEGAWATT_NODE_PASSWORD"},
     "admin": {"address": "0x…"}}

`read_accounts` reads it bounded and validates every field (an unknown field is refused).
"""

from __future__ import annotations

import json
from pathlib import Path

from eth_account import Account
from pydantic import BaseModel, Field, ValidationError, field_validator

from protocol.config_files import field_problems, read_bounded

ACCOUNTS_FILE = "accounts.json"
MAX_ACCOUNTS_BYTES = 16 * 1024
BUYER_PASSWORD_ENV = "NEGAWATT_BUYER_PASSWORD"
OWNER_PASSWORD_ENV = "NEGAWATT_NODE_PASSWORD"
GATEWAY_SCRYPT_N = 2**14  # a gateway decrypts its owner key with 16 MiB (protocol.keys)


class AccountsError(ValueError):
    """accounts.json could not be read or is invalid; the message says which field."""


def _address(value: str) -> str:
    from eth_utils import is_checksum_address

    if not is_checksum_address(value):
        raise ValueError(f"{value!r} is not a checksummed address")
    return value


class KeyAccount(BaseModel):
    """An account with an encrypted keystore."""

    model_config = {"extra": "forbid", "frozen": True}

    address: str
    keystore: Path
    password_env: str = Field(..., min_length=1, max_length=64)

    _check = field_validator("address")(lambda cls, v: _address(v))


class PlainAccount(BaseModel):
    """An account named by address only (its key is anvil's, well known)."""

    model_config = {"extra": "forbid", "frozen": True}

    address: str

    _check = field_validator("address")(lambda cls, v: _address(v))


class DevnetAccounts(BaseModel):
    """The contents of accounts.json."""

    model_config = {"extra": "forbid", "frozen": True}

    version: int = Field(1, ge=1, le=1)
    network: str = Field("devnet", min_length=1, max_length=64)
    chain_id: int = Field(..., ge=1)
    password: str = Field(..., min_length=1, max_length=256)
    buyer: KeyAccount
    owner: KeyAccount
    admin: PlainAccount


def create_accounts(run_dir: Path, chain_id: int, buyer_key: bytes, admin_address: str,
                    password: str) -> DevnetAccounts:
    """Write the buyer's keystore (if `devnet demo` has not already: the same file its buyer uses), a
    fresh spare owner's keystore, and accounts.json; returns what was written."""
    from protocol.keys import write_keystore

    buyer_keystore = run_dir / "buyer-keystore.json"
    if not buyer_keystore.exists():
        write_keystore(buyer_keystore, buyer_key, password)
    owner_keystore = run_dir / "accounts" / "owner-keystore.json"
    if owner_keystore.exists():
        owner_address = _keystore_address(owner_keystore)
    else:
        owner_address = write_keystore(owner_keystore, bytes(Account.create().key), password,
                                       iterations=GATEWAY_SCRYPT_N)
    accounts = DevnetAccounts(
        chain_id=chain_id, password=password,
        buyer=KeyAccount(address=Account.from_key(buyer_key).address, keystore=buyer_keystore.resolve(),
                         password_env=BUYER_PASSWORD_ENV),
        owner=KeyAccount(address=owner_address, keystore=owner_keystore.resolve(), password_env=OWNER_PASSWORD_ENV),
        admin=PlainAccount(address=admin_address))
    path = run_dir / ACCOUNTS_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(accounts.model_dump_json(indent=2) + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)
    return accounts


def _keystore_address(path: Path) -> str:
    from eth_utils import to_checksum_address

    return to_checksum_address("0x" + json.loads(path.read_text())["address"].removeprefix("0x"))


def read_accounts(run_dir: Path) -> DevnetAccounts:
    """accounts.json of `run_dir` (or the file itself), bounded and validated."""
    path = run_dir / ACCOUNTS_FILE if run_dir.is_dir() else run_dir
    raw = read_bounded(path, MAX_ACCOUNTS_BYTES, "devnet accounts file", AccountsError)
    try:
        return DevnetAccounts.model_validate_json(raw)
    except ValidationError as error:
        raise AccountsError(f"{path}: {field_problems(error, 'accounts')}") from None


def describe(accounts: DevnetAccounts, run_dir: Path) -> list[str]:
    """The lines `devnet up` prints about the accounts: addresses, keystores, password and its variables."""
    return [
        f"buyer {accounts.buyer.address}: keystore {accounts.buyer.keystore} "
        f"(fund it: negawatt devnet fund {accounts.buyer.address} --musd 1000 --run-dir {run_dir})",
        f"spare owner {accounts.owner.address}: keystore {accounts.owner.keystore} "
        f"(fund it: negawatt devnet fund {accounts.owner.address} --eth 10 --nega 100 --run-dir {run_dir})",
        f"keystore password (a devnet's, not a secret): {accounts.password}; export "
        f"{accounts.buyer.password_env} / {accounts.owner.password_env} with it; all of this is in "
        f"{run_dir / ACCOUNTS_FILE}",
    ]
