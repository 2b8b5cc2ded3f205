"""`negawatt devnet keys`: the private keys of a devnet's accounts, for a wallet or the web app.

The rule: it reads only a devnet's run folder (accounts.json, whose keystores' password it holds,
and each node's node.toml) and refuses any chain but the local one (chain id 31337), so it can
never print a key of value. The keys are those of the buyer, the spare owner and every node's
owner; pasted into the web app's "use a devnet key", they act as those accounts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eth_account import Account

from negawatt.devnet.accounts import AccountsError, read_accounts

DEVNET_CHAIN_ID = 31337
MAX_NODES = 1_000  # node folders read at most (a devnet runs tens)


class KeysError(ValueError):
    """The run folder is not a devnet's, or a keystore could not be opened; the message says which."""


@dataclass(frozen=True)
class DevnetKey:
    """One account: what it is on the devnet, its address and its private key (0x hex)."""

    role: str
    address: str
    private_key: str


def devnet_keys(run_dir: Path) -> list[DevnetKey]:
    """The buyer's, the spare owner's and each node owner's key, decrypted with the devnet's password."""
    from node.config import load_config
    from protocol.config_files import ConfigError
    from protocol.keys import KeyError_, load_key

    try:
        accounts = read_accounts(run_dir)
    except AccountsError as error:
        raise KeysError(f"{error} (give the --run-dir of a `negawatt devnet up`)") from None
    if accounts.chain_id != DEVNET_CHAIN_ID:
        raise KeysError(f"{run_dir} is for chain {accounts.chain_id}, not a local devnet ({DEVNET_CHAIN_ID}): "
                        "refusing to print its keys")
    found = [("buyer", accounts.buyer.keystore), ("spare owner", accounts.owner.keystore)]
    for config_path in sorted((run_dir / "nodes").glob("*/node.toml"))[:MAX_NODES]:
        try:
            config = load_config(config_path)
        except ConfigError as error:
            raise KeysError(f"{config_path}: {error}") from None
        found.append((f"owner of node {config_path.parent.name}", config.owner_keystore))
    keys = []
    for role, keystore in found:
        try:
            key = load_key(Path(keystore), accounts.password)
        except (KeyError_, OSError, ValueError) as error:
            raise KeysError(f"{role}: {keystore} could not be opened: {error}") from None
        keys.append(DevnetKey(role, Account.from_key(key).address, "0x" + bytes(key).hex()))
    return keys
