"""The bench's chain side: bulk registration of N sites on anvil through the real DeviceRegistry.

The rule: every site is registered by its own owner with real transactions, so the registry
checks each device key's EIP-712 permit and emits DeviceRegistered / DeviceSited, which the
oracle's ChainView indexes. Method: anvil's impersonation (`anvil_autoImpersonateAccount`), so an
owner's `eth_sendTransaction` needs no transaction signature; owners get gas money with
`anvil_setBalance`; automine is off (`evm_setAutomine false`) while the transactions go in as
JSON-RPC batches of BATCH calls, the block gas limit is raised, and `evm_mine` mines until the pool
is empty. Every receipt's status is then checked (eth_getBlockReceipts of the mined blocks). Calldata is ABI-encoded with
eth_abi (web3's contract encoder costs more than the signature itself).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterable
from typing import Any

from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector

from bench.oracle_service_data import DEVICE_CAPACITY_W, DEVICE_KIND, SITE_CAPACITY_W, Fleet, PermitSigner, sign_digest
from protocol.kinds import DeviceKind

BATCH = 1_000
BLOCK_GAS_LIMIT = 1_000_000_000
TX_GAS = 250_000
REGISTER = function_signature_to_4byte_selector("register(address,uint8,uint32,uint32,uint256,bytes)")
REGISTER_AT_SITE = function_signature_to_4byte_selector("registerAtSite(address,address,uint8,uint32,uint256,bytes)")


class Rpc:
    """A JSON-RPC client with batches, for the calls web3 would make one at a time."""

    def __init__(self, url: str):
        self.url = url
        self._id = 0

    def batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Send the calls as one batch; returns the results in order (raises on any error)."""
        if not calls:
            return []
        payload = []
        for method, params in calls:
            self._id += 1
            payload.append({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})
        request = urllib.request.Request(self.url, json.dumps(payload).encode(),
                                         {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=600) as response:
            answers = json.loads(response.read())
        by_id = {a["id"]: a for a in answers}
        results = []
        for item in payload:
            answer = by_id[item["id"]]
            if "error" in answer:
                raise RuntimeError(f"{item['method']} failed: {answer['error']}")
            results.append(answer["result"])
        return results

    def call(self, method: str, *params: Any) -> Any:
        """One call."""
        return self.batch([(method, list(params))])[0]

    def chain_time(self) -> int:
        """The latest block's timestamp."""
        return int(self.call("eth_getBlockByNumber", "latest", False)["timestamp"], 16)

    def set_time(self, timestamp: int) -> None:
        """Mine one block stamped `timestamp` (the chain's clock moves forward to it)."""
        self.call("evm_setNextBlockTimestamp", hex(timestamp))
        self.call("evm_mine")


def _chunks(items: list[Any], size: int = BATCH) -> Iterable[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def registration_calldata(fleet: Fleet, signer: PermitSigner, deadline: int, zone: int) -> list[tuple[str, bytes]]:
    """(owner, calldata) of every site's two transactions, in nonce order per owner: the site meter's
    `register`, then the device's `registerAtSite`, each with the device key's permit."""
    txs = []
    for site, device, owner in zip(fleet.sites, fleet.devices, fleet.owners):
        permit = {"owner": owner, "device": site.address, "kind": int(DeviceKind.SITE_METER),
                  "capacityW": SITE_CAPACITY_W, "zone": zone, "nonce": 0, "deadline": deadline}
        signature = sign_digest(site.key, signer.digest("DevicePermit", permit))
        txs.append((owner, REGISTER + encode(["address", "uint8", "uint32", "uint32", "uint256", "bytes"],
                                             [site.address, int(DeviceKind.SITE_METER), SITE_CAPACITY_W, zone,
                                              deadline, signature])))
        at_site = {"owner": owner, "device": device.address, "site": site.address, "kind": DEVICE_KIND,
                   "capacityW": DEVICE_CAPACITY_W, "nonce": 0, "deadline": deadline}
        signature = sign_digest(device.key, signer.digest("DeviceAtSitePermit", at_site))
        txs.append((owner, REGISTER_AT_SITE + encode(["address", "address", "uint8", "uint32", "uint256", "bytes"],
                                                     [device.address, site.address, DEVICE_KIND, DEVICE_CAPACITY_W,
                                                      deadline, signature])))
    return txs


def check_permits(fleet: Fleet, signer: PermitSigner, deadline: int, zone: int) -> None:
    """The fast permit digests of the first site equal protocol.eip712's (AssertionError otherwise)."""
    site, device, owner = fleet.sites[0], fleet.devices[0], fleet.owners[0]
    signer.check_permit_digest("DevicePermit", {
        "owner": owner, "device": site.address, "kind": int(DeviceKind.SITE_METER), "capacityW": SITE_CAPACITY_W,
        "zone": zone, "nonce": 0, "deadline": deadline})
    signer.check_permit_digest("DeviceAtSitePermit", {
        "owner": owner, "device": device.address, "site": site.address, "kind": DEVICE_KIND,
        "capacityW": DEVICE_CAPACITY_W, "nonce": 0, "deadline": deadline})


def register_fleet(rpc: Rpc, fleet: Fleet, registry: str, signer: PermitSigner, zone: int,
                   progress: Callable[[int, int], None] = lambda done, total: None) -> dict[str, float]:
    """Register every site of `fleet` (see the module docstring); returns timings of its steps."""
    import time

    began = time.perf_counter()
    deadline = rpc.chain_time() + 30 * 86_400
    check_permits(fleet, signer, deadline, zone)
    txs = registration_calldata(fleet, signer, deadline, zone)
    signed = time.perf_counter()
    rpc.call("anvil_autoImpersonateAccount", True)
    rpc.call("evm_setAutomine", False)
    rpc.call("evm_setBlockGasLimit", hex(BLOCK_GAS_LIMIT))
    gas_price = int(rpc.call("eth_gasPrice"), 16) * 2
    for owners in _chunks(fleet.owners):
        rpc.batch([("anvil_setBalance", [owner, hex(10**18)]) for owner in owners])
    hashes: list[str] = []
    nonces: dict[str, int] = {}
    for chunk in _chunks(txs):
        calls = []
        for owner, data in chunk:
            nonce = nonces.get(owner, 0)
            nonces[owner] = nonce + 1
            calls.append(("eth_sendTransaction", [{"from": owner, "to": registry, "data": "0x" + data.hex(),
                                                   "gas": hex(TX_GAS), "gasPrice": hex(gas_price),
                                                   "nonce": hex(nonce)}]))
        hashes += rpc.batch(calls)
        progress(len(hashes) // 2, len(fleet.sites))
    sent = time.perf_counter()
    first = int(rpc.call("eth_blockNumber"), 16) + 1
    for _ in range(10_000):
        rpc.call("evm_mine")
        status = rpc.call("txpool_status")
        if int(status["pending"], 16) == 0 and int(status["queued"], 16) == 0:
            break
    rpc.call("evm_setAutomine", True)
    mined = time.perf_counter()
    last = int(rpc.call("eth_blockNumber"), 16)
    ok = 0
    for blocks in _chunks(list(range(first, last + 1)), 20):
        for receipts in rpc.batch([("eth_getBlockReceipts", [hex(n)]) for n in blocks]):
            ok += sum(1 for r in receipts or () if int(r["status"], 16) == 1)
    if ok != len(hashes):
        raise RuntimeError(f"{len(hashes) - ok} of {len(hashes)} registration transactions failed or were not mined")
    rpc.call("anvil_autoImpersonateAccount", False)
    return {"register_sign_seconds": round(signed - began, 3), "register_send_seconds": round(sent - signed, 3),
            "register_mine_seconds": round(mined - sent, 3),
            "register_check_seconds": round(time.perf_counter() - mined, 3)}
