"""What the dispatch tests on anvil share: a settable clock and one registered EV charger in zone 3
with a session under way, plus the buyer who will ask it for flexibility."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account

from node.devices.factory import build_device
from protocol import eip712
from protocol.chain import Transactor


class SettableClock:
    """A clock the test moves by hand."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class ChargerOnChain:
    """The chain handles, the buyer, and a registered charger's key and simulator."""

    web3: Any
    manifest: Any
    buyer: Transactor
    registry: Any
    market: Any
    usd: Any
    key: Any
    ev: Any
    now: int


def registered_charger(devnet) -> ChargerOnChain:
    """Register a fresh 7.4 kW EV charger in zone 3 (owner key 1) whose session started 10 minutes ago."""
    web3, manifest = devnet.web3(), devnet.manifest()
    abis = [entry.abi for entry in manifest.contracts.values()]
    owner = Transactor(web3, devnet.keys[1], abis=abis)
    buyer = Transactor(web3, devnet.keys[2], abis=abis)
    registry, market = manifest.contract(web3, "DeviceRegistry"), manifest.contract(web3, "FlexMarket")
    usd = manifest.contract(web3, "MockStablecoin")
    now = web3.eth.get_block("latest")["timestamp"]
    key = Account.create()
    deadline = now + 3_600
    permit = {"owner": owner.address, "device": key.address, "kind": 0, "capacityW": 7_400, "zone": 3,
              "nonce": 0, "deadline": deadline}
    owner.send(registry.functions.register(key.address, 0, 7_400, 3, deadline, eip712.sign(
        key.key, "DevicePermit", permit, manifest.chainId, registry.address)))
    arrival = (now // 60 - 10) * 60
    ev = build_device({"kind": "ev_charger", "device_id": key.address, "seed": 1, "max_power_w": 7_400,
                       "sessions": [{"arrival": arrival, "departure": arrival + 12 * 3_600,
                                     "energy_needed_wh": 20_000}]}, start_time=arrival)
    return ChargerOnChain(web3, manifest, buyer, registry, market, usd, key, ev, now)
