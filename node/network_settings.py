"""The node.toml settings a network profile (protocol.network_profile) implies, for `node init`.

The rule: everything a node must agree on with its network comes from the profile (RPC, manifest,
API, metering interval, the confirmations its chain needs: 0 on a devnet, where a node waiting for
2 confirmations of a chain that mines on demand never sees a request); an option given on the
command line wins over the profile. On a devnet the node is also set up the way the devnet sets
up its own nodes (negawatt.devnet.network `_enrol_node`): it checks for claims often (its clock
may run `time_scale` times faster than the wall's), claims as soon as the gas is covered once, and
values one unit of each of the devnet's tokens (NEGA, 18 decimals; the mock stablecoin mUSD, 6
decimals) at 1 ETH, so it claims by itself.
"""

from __future__ import annotations

from typing import Any

from protocol.manifest import Manifest
from protocol.network_profile import NetworkProfile

# wei one base unit of a devnet token is worth: one token unit = 1 ETH (as the devnet's own nodes)
DEVNET_TOKEN_VALUES = {"NegawattToken": 1, "MockStablecoin": 10**12}
CLAIM_CHECK_CHAIN_SECONDS = 600  # a devnet node checks its claims every 10 chain minutes...
FORECAST_CHECK_CHAIN_SECONDS = 300  # ...and its published forecast every 5
MIN_CHECK_SECONDS = 2


def is_devnet(profile: NetworkProfile) -> bool:
    """Whether the profile describes a devnet (`negawatt devnet up` names its profile "devnet")."""
    return profile.name == "devnet"


def profile_settings(profile: NetworkProfile, manifest: Manifest | None = None,
                     devnet: bool | None = None) -> dict[str, Any]:
    """node.toml's top-level settings for a node on `profile`'s network (without its devices).

    `manifest` (the profile's, loaded) gives the devnet tokens' addresses; `devnet` overrides
    `is_devnet(profile)`."""
    settings: dict[str, Any] = {"rpc_url": profile.rpc_url, "manifest": str(profile.manifest),
                                "confirmations": profile.confirmations, "interval_seconds": profile.interval_seconds}
    if profile.api_url:
        settings["api_url"] = profile.api_url
    if not (is_devnet(profile) if devnet is None else devnet):
        return settings
    scale = profile.time_scale

    def wall(chain_seconds: int) -> int:
        return max(MIN_CHECK_SECONDS, int(chain_seconds / scale))

    settings.update({"claim_check_seconds": wall(CLAIM_CHECK_CHAIN_SECONDS), "claim_gas_multiple": 1})
    if profile.api_url:
        settings["forecast_check_seconds"] = wall(FORECAST_CHECK_CHAIN_SECONDS)
    if manifest is not None:
        settings["value_wei_per_unit"] = {manifest.contracts[name].address: value
                                          for name, value in DEVNET_TOKEN_VALUES.items() if name in manifest.contracts}
    return settings
