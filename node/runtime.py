"""Wiring a node from its configuration: keys, chain, devices, outbox; and the node's operations
(register, status, claim, run) that the `negawatt node` commands call."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

from eth_account import Account

from node import claims, subscription
from node.config import NodeConfig
from node.device_state import DeviceStateStore
from node.device_drivers import build_node_device, build_site_meter, is_simulated_site_meter
from node.devices.interface import DeviceUnavailable, kind_number
from node.capability import SiteCapability
from node.dispatch import Dispatcher, NodeDevice, Policy, RequestWatcher, fetch_json, open_dispatch_db
from node.eligibility import (EarningWarning, WarningLog, bond_warning, fetch_rule, history_warning,
                              registration_warning)
from node.forecast import ForecastPublisher
from node.forecast_offer import window_offers
from node.funding import devnet_run_dir, funding_error, shortfalls, token_units
from node.own_baseline import recent_window_w
from node.drivers import status_file
from node.metering import Meter, MeteredDevice
from node.metrics import NodeMetrics
from node.outbox import Outbox
from node.periodic import PeriodicTask, Scheduler
from node.uploader import Uploader, run_uploads
from node.ven import Ven, VenClient, run_ven
from protocol import eip712
from protocol.chain import Transactor, connect
from protocol.clock import ChainClock
from protocol.holdout import GateSeeds
from protocol.keys import load_key, read_password
from protocol.capability import CapabilityRules
from protocol.manifest import check_chain, load_manifest
from protocol.units import format_units

log = logging.getLogger("negawatt.node")


@dataclass
class Node:
    """A configured node, connected to its chain."""

    config: NodeConfig
    web3: Any
    manifest: Any
    owner: Transactor
    devices: list[NodeDevice]
    outbox: Outbox

    def contract(self, name: str) -> Any:
        return self.manifest.contract(self.web3, name)

    @property
    def site(self) -> str | None:
        """The address of the node's site meter (its other devices are registered at it), if it has one."""
        return next((d.address for d, c in zip(self.devices, self.config.devices) if c.kind == "site_meter"), None)

    @property
    def flexible_capacity_w(self) -> int:
        """The capacity the owner bonds for: every device but the site meter."""
        return sum(d.capacity_w for d, c in zip(self.devices, self.config.devices) if c.kind != "site_meter")

    def oracles(self) -> list[str]:
        """The oracles' URLs, as they published them in the OracleHub."""
        _addresses, urls = self.contract("OracleHub").functions.oracles().call()
        return [u for u in urls if u]


def open_node(config: NodeConfig) -> Node:
    """Decrypt the keys, connect to the chain, build the device drivers and open the outbox."""
    password = read_password(config.password_env, config.password_file)
    manifest = load_manifest(config.manifest)
    web3 = connect(config.rpc_url)
    check_chain(manifest, web3)
    owner = Transactor(web3, load_key(config.owner_keystore, password),
                       abis=[entry.abi for entry in manifest.contracts.values()])
    start = time.time()
    devices: list[NodeDevice | None] = [None] * len(config.devices)
    keys = [load_key(device.keystore, password) for device in config.devices]
    for index, device in enumerate(config.devices):  # a simulated site meter sums the others: built last
        if is_simulated_site_meter(device):
            continue
        address = Account.from_key(keys[index]).address
        driver = build_node_device(device.kind, address, device.capacity_w, device.params, device.driver,
                                   device.driver_settings(), start_time=start)
        devices[index] = NodeDevice(address, keys[index], driver, config.zone, device.capacity_w)
    for index, device in enumerate(config.devices):
        if is_simulated_site_meter(device):
            members = [d.driver for d in devices if d is not None and not d.driver.live]
            address = Account.from_key(keys[index]).address
            driver = build_site_meter(address, members, device.capacity_w, device.params, start_time=start)
            devices[index] = NodeDevice(address, keys[index], driver, config.zone, device.capacity_w)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    return Node(config, web3, manifest, owner, [d for d in devices if d is not None],
                Outbox(config.data_dir / "outbox.sqlite"))


def registration_steps(node: Node) -> tuple[list[str], list[tuple[Any, str]], int, int]:
    """What `register` would do: (lines for devices already registered, [(call, line)] for each device
    to register with its signed permit, the bond still missing, the bond required), read from the chain."""
    registry, staking = node.contract("DeviceRegistry"), node.contract("Staking")
    already, calls = [], []
    site = node.site
    deadline = node.web3.eth.get_block("latest")["timestamp"] + 3_600
    pairs = sorted(zip(node.devices, node.config.devices), key=lambda pair: pair[1].kind != "site_meter")
    for device, config in pairs:  # the site meter first: the other devices are registered at it
        info = registry.functions.deviceInfo(device.address).call()
        if info[0] != "0x" + "00" * 20:
            already.append(f"{device.address}: already registered to {info[0]}")
            continue
        nonce = registry.functions.nonces(device.address).call()
        kind = kind_number(config.kind)
        if site is not None and device.address != site:
            permit = {"owner": node.owner.address, "device": device.address, "site": site, "kind": kind,
                      "capacityW": config.capacity_w, "nonce": nonce, "deadline": deadline}
            signature = eip712.sign(device.key, "DeviceAtSitePermit", permit, node.manifest.chainId,
                                    registry.address)
            calls.append((registry.functions.registerAtSite(device.address, site, kind, config.capacity_w,
                                                            deadline, signature),
                          f"{device.address}: registered at site {site} ({config.kind}, {config.capacity_w} W)"))
            continue
        permit = {"owner": node.owner.address, "device": device.address, "kind": kind,
                  "capacityW": config.capacity_w, "zone": node.config.zone, "nonce": nonce, "deadline": deadline}
        signature = eip712.sign(device.key, "DevicePermit", permit, node.manifest.chainId, registry.address)
        calls.append((registry.functions.register(device.address, kind, config.capacity_w, node.config.zone,
                                                  deadline, signature),
                      f"{device.address}: registered ({config.kind}, {config.capacity_w} W, zone {node.config.zone})"))
    required = missing = 0
    if node.config.stake_per_kw:
        required = staking.functions.requiredBond(node.flexible_capacity_w).call()
        missing = max(0, required - staking.functions.bondedOf(node.owner.address).call())
    return already, calls, missing, required


def check_funds(node: Node, calls: list[Any], missing: int, required: int) -> None:
    """Raise FundsError (one line: the owner's address, how much ETH and NEGA it lacks, what to run)
    when the owner cannot pay for `calls` and the `missing` bond; see node.funding."""
    token, staking = node.contract("NegawattToken"), node.contract("Staking")
    short = shortfalls(node.web3, node.owner.address, calls, token, missing, spender=staking.address)
    if short:
        symbol, decimals = token_units(token)
        per_kw = staking.functions.bondPerKW().call()
        rule = (f"the bond for {node.flexible_capacity_w} W at {format_units(per_kw, decimals, symbol)} per kW is "
                f"{format_units(required, decimals, symbol)}" if missing else "")
        raise funding_error(node.owner.address, short, node.manifest.chainId, rule,
                            devnet_run_dir(node.config.manifest))


def register(node: Node) -> list[str]:
    """Register every device not yet on-chain (device permits) and bond the required stake, after
    checking the owner can pay for it all (FundsError before anything is sent if not)."""
    staking, token = node.contract("Staking"), node.contract("NegawattToken")
    done, calls, missing, required = registration_steps(node)
    check_funds(node, [call for call, _line in calls], missing, required)
    for call, line in calls:
        node.owner.send(call)
        done.append(line)
    if node.config.stake_per_kw:
        symbol, decimals = token_units(token)
        if missing:
            node.owner.send(token.functions.approve(staking.address, missing))
            node.owner.send(staking.functions.stake(missing))
            done.append(f"staked {format_units(missing, decimals, symbol)} "
                        f"(bond now {format_units(required, decimals, symbol)})")
        else:
            bonded = staking.functions.bondedOf(node.owner.address).call()
            done.append(f"bond {format_units(bonded, decimals, symbol)} covers the required "
                        f"{format_units(required, decimals, symbol)}")
    return done


def token_info(node: Node, address: str) -> dict[str, Any]:
    """{"symbol", "decimals"} of an ERC-20 token, read from its contract (the standard calls of the
    NegawattToken ABI); a token that does not answer them is shown in base units ("?", 0)."""
    token = node.web3.eth.contract(address=address, abi=node.manifest.contracts["NegawattToken"].abi)
    try:
        symbol, decimals = token_units(token)
    except Exception:  # not an ERC-20 with metadata: base units, said so
        return {"symbol": "?", "decimals": 0}
    return {"symbol": symbol, "decimals": decimals}


def earning_warnings(node: Node, records: dict[str, tuple[bool, bool]], free_bond: int, required: int,
                     stake_token: dict[str, Any], oracles: list[str], now: float | None = None) -> list[EarningWarning]:
    """Why the node's devices (or its owner) cannot earn yet (node.eligibility): `records` maps each
    device to (registered, active); the bond figures are the owner's free bond and what the devices'
    flexible capacity needs; `now` is the node's (chain) clock, read from the chain if not given."""
    rule = fetch_rule(oracles, node.config.zone, fetch_json)
    warnings = []
    bond = bond_warning(free_bond, required, node.flexible_capacity_w, stake_token["symbol"], stake_token["decimals"])
    if bond is not None and node.config.stake_per_kw:
        warnings.append(bond)
    now = ChainClock(node.web3)() if now is None else now
    for device in node.devices:
        registered, active = records[device.address]
        found = registration_warning(device.address, registered, active) or history_warning(
            node.outbox, device.address, now, rule)
        if found is not None:
            warnings.append(found)
    return warnings


def _free_bond(node: Node) -> tuple[int, int, int]:
    """(bonded, bonded above the lock, required for the devices' flexible capacity) of the owner."""
    staking = node.contract("Staking")
    bonded = staking.functions.bondedOf(node.owner.address).call()
    locked = staking.functions.lockedOf(node.owner.address).call()
    return bonded, max(0, bonded - locked), staking.functions.requiredBond(node.flexible_capacity_w).call()


def device_records(node: Node) -> dict[str, tuple[bool, bool]]:
    """(registered, active) of each device, from the DeviceRegistry."""
    registry = node.contract("DeviceRegistry")
    records = {}
    for device in node.devices:
        info = registry.functions.deviceInfo(device.address).call()
        records[device.address] = (info[0] != "0x" + "00" * 20, bool(info[4]))
    return records


def status(node: Node) -> dict[str, Any]:
    """Devices and their registration, the owner's stake, the outbox per oracle, unclaimed rewards,
    and why a device cannot earn yet (`warnings`, node.eligibility); `tokens` gives the symbol and
    decimals of each token an amount is in (`stakeToken`, and the keys of `unclaimed`)."""
    registry, distributor = node.contract("DeviceRegistry"), node.contract("RewardDistributor")
    devices = []
    for device, config in zip(node.devices, node.config.devices):
        info = registry.functions.deviceInfo(device.address).call()
        if device.driver.live:  # a real device: what the running node last saw of it
            state = status_file.read(node.config.data_dir, device.address) or {
                "available": False, "error": "no report from a running node (is `negawatt node run` running?)"}
        else:
            try:
                device.driver.advance(time.time())
            except DeviceUnavailable:
                pass
            state = device.driver.state()
        devices.append({"address": device.address, "registered": info[0] != "0x" + "00" * 20, "owner": info[0],
                        "active": info[4], "zone": info[2], "capacityW": info[1], "state": state,
                        "kind": config.kind, "driver": config.driver})
    oracles = node.oracles()
    rewards = claims.fetch_rewards(oracles, node.owner.address, bytes(distributor.functions.root().call())) or []
    unclaimed = {i.token: str(i.unclaimed) for i in claims.claimable(distributor, node.owner.address, rewards)}
    stake_address = node.manifest.address("NegawattToken")
    tokens = {address: token_info(node, address) for address in {stake_address, *unclaimed}}
    bonded, free, required = _free_bond(node)
    records = {d["address"]: (d["registered"], bool(d["active"])) for d in devices}
    warnings = earning_warnings(node, records, free, required, tokens[stake_address], oracles)
    for entry in devices:
        entry["warnings"] = [w.to_dict() for w in warnings if w.device == entry["address"]]
    return {
        "owner": node.owner.address,
        "devices": devices,
        "stake": {"bonded": str(bonded), "required": str(required), "free": str(free)},
        "stakeToken": stake_address,
        "outbox": {"pending": node.outbox.depth(), "lastAck": node.outbox.last_ack(),
                   "rejected": len(node.outbox.rejected())},
        "oracles": oracles,
        "unclaimed": unclaimed,
        "tokens": tokens,
        "warnings": [w.to_dict() for w in warnings if w.device is None],
    }


def claim_now(node: Node, force: bool = True) -> str:
    """Claim every unclaimed token (or, unless `force`, only when it is worth the gas)."""
    distributor = node.contract("RewardDistributor")
    root = bytes(distributor.functions.root().call())
    rewards = claims.fetch_rewards(node.oracles(), node.owner.address, root)
    if rewards is None:
        return "no oracle publishes the current root yet"
    items = claims.claimable(distributor, node.owner.address, rewards)
    if not items:
        return "nothing to claim"
    if not force:
        worth, reason = claims.worth_claiming(node.web3, distributor, node.owner, node.owner.address, items,
                                              node.config.value_wei_per_unit, node.config.claim_gas_multiple)
        if not worth:
            return f"not claiming: {reason}"
    receipt = claims.claim(node.owner, distributor, node.owner.address, items)
    return f"claimed {len(items)} token(s) in block {receipt.block_number}"


def forecast_publisher(node: Node, policy: Policy, clock: Any, registry: str,
                       capability: Callable[[], int | None] | None = None) -> ForecastPublisher | None:
    """The publisher of the node's site forecast (node.forecast), when the node has a site meter and
    an API to publish to; its offers are what the dispatcher would commit (node.forecast_offer)."""
    site = node.site
    if site is None or not node.config.api_url:
        return None
    meter = next(d for d in node.devices if d.address == site)
    flexible = [d for d, c in zip(node.devices, node.config.devices) if c.kind != "site_meter"]

    def recent(device: str, start: int, end: int) -> int | None:
        return recent_window_w(node.outbox, device, start, end)

    return ForecastPublisher(site, meter.key, meter.zone, node.manifest.chainId, registry, node.config.api_url,
                             lambda windows: window_offers(policy, flexible, windows, clock(), recent,
                                                           capability() if capability else None),
                             clock=clock,
                             state_path=node.config.data_dir / "forecast-state.json")


def build_ven(node: Node, dispatcher: Dispatcher, clock: Callable[[], float], db: Any) -> Ven | None:
    """The node's VEN of the utility's VTN that node.toml's [openadr] names (node.ven), if any. It
    reports the site meter's usage when the node has one, else its devices' summed; `db` is its own
    connection to the dispatch database (it runs in its own thread)."""
    if node.config.openadr is None:
        return None
    site = node.site
    reported = [site] if site else [d.address for d in node.devices]

    def expected_draw_w(start: int, end: int) -> int:
        """For IMPORT_CAPACITY_LIMIT: the site's usual draw in the window (its recent days), else its
        last hour's; from the signed readings only (the VEN's thread never touches a driver)."""
        total = 0
        for address in reported:
            recent = recent_window_w(node.outbox, address, start, end)
            if recent is None:
                now = int(clock())
                last = node.outbox.readings(address, now - 3_600, now)
                recent = sum(wh for wh, _ in last.values()) * 3_600 // (len(last) * node.config.interval_seconds) \
                    if last else 0
            total += recent
        return total

    return Ven(VenClient(node.config.openadr), dispatcher, node.outbox, reported, node.config.interval_seconds,
               clock, expected_draw_w, db)


def run(node: Node, stop: threading.Event) -> None:
    """Meter, upload, dispatch and claim until `stop` is set."""
    clock = ChainClock(node.web3)
    registry = node.manifest.address("DeviceRegistry")
    oracle_cache = {"urls": node.oracles(), "at": time.monotonic()}

    def oracles() -> list[str]:
        if time.monotonic() - oracle_cache["at"] > node.config.oracle_refresh_seconds:
            try:
                urls = node.oracles()
                for url in set(urls) - set(oracle_cache["urls"]):  # a new oracle gets the last week too
                    log.info("new oracle %s: owing it %d items", url,
                             node.outbox.add_oracle(url, since=int(time.time()) - 7 * 86_400))
                oracle_cache["urls"] = urls
                oracle_cache["at"] = time.monotonic()
            except Exception:  # keep the last known set while the chain is unreachable
                log.warning("could not refresh the oracle set")
        return oracle_cache["urls"]

    meter = Meter(node.outbox, [MeteredDevice(d.address, d.key, d.driver) for d in node.devices],
                  node.config.interval_seconds, node.manifest.chainId, registry, oracles)
    device_state = DeviceStateStore(node.config.data_dir / "devices.sqlite")
    resumed = [d.address for d in node.devices if device_state.resume(d.address, d.driver)]
    if resumed:
        log.info("resumed %d simulated device(s) from their saved state", len(resumed))
    db = open_dispatch_db(str(node.config.data_dir / "dispatch.sqlite"))
    policy = Policy(**node.config.policy.model_dump())
    seeds = GateSeeds(node.web3)
    tests = CapabilityRules.from_parameters(node.manifest.parameters)
    capability = SiteCapability(node.site, oracles, fetch_json).cap_w if node.site and tests.runs else None
    dispatcher = Dispatcher(db, node.outbox, node.devices, policy, node.manifest.chainId, registry, oracles,
                            clock=clock, site=node.site, seed_of=seeds.seed, tests=tests,
                            capability=capability or (lambda: None))
    watcher = RequestWatcher(node.web3, node.contract("FlexMarket"), db, node.manifest.start_block,
                             node.config.confirmations, on_rollback=dispatcher.on_rollback)
    ven = build_ven(node, dispatcher, clock, open_dispatch_db(str(node.config.data_dir / "dispatch.sqlite")))
    if dispatcher.resume_applied():
        log.info("setpoints of running windows applied again after the restart")
    uploader = Uploader(node.outbox, clock=time.time)
    threading.Thread(target=run_uploads, args=(uploader, oracles, stop), name="uploads", daemon=True).start()
    if ven is not None:
        threading.Thread(target=run_ven, args=(ven, stop), name="openadr", daemon=True).start()
    metrics = None
    if node.config.metrics_port:
        metrics = NodeMetrics()
        metrics.serve(node.config.metrics_port)
    for device in node.devices:  # real drivers connect (in the background, with back-off)
        device.driver.start()
    wake = threading.Event()
    subscription.start(node.config.rpc_url, node.manifest.address("FlexMarket"), wake, stop)
    changes = [0]  # setpoint and metering changes since the devices' state was last saved

    def meter_devices() -> None:
        changes[0] += meter.tick(clock())

    def follow_requests() -> None:
        opened, cancelled = watcher.poll()
        for request in opened:
            dispatcher.on_request(request)
        for request_id in cancelled:
            dispatcher.on_cancelled(request_id)
        for request_id, root, price in watcher.allocations():
            dispatcher.on_allocation(request_id, root, price)

    def dispatch() -> None:
        changes[0] += dispatcher.step()

    def save_device_state() -> None:
        if changes[0]:
            device_state.save((d.address, d.driver) for d in node.devices)
            changes[0] = 0

    def report_status() -> None:
        if metrics:
            metrics.update(node.outbox, uploader.stats, node.devices, dispatcher.latencies_ms)
        status_file.write(node.config.data_dir, [(d.address, d.driver) for d in node.devices])

    def check_claims() -> None:
        log.info("claims: %s", claim_now(node, force=False))

    publisher = forecast_publisher(node, policy, clock, registry, capability)
    warning_log = WarningLog(log)  # each "cannot earn yet" warning logged once, not every check
    stake_token = token_info(node, node.manifest.address("NegawattToken"))

    def check_earning() -> None:
        _bonded, free, required = _free_bond(node)
        warning_log.update(earning_warnings(node, device_records(node), free, required, stake_token, oracles(),
                                            clock()))

    def publish_forecast() -> None:
        if publisher is not None:  # the 24 hours from the next whole hour, rebuilt as the hour turns
            publisher.publish(day_start=(int(clock()) // 3_600 + 1) * 3_600)

    Scheduler([
        PeriodicTask("metering", 0, meter_devices),
        PeriodicTask("requests", 2, follow_requests, wake=wake),  # and at once on a FlexMarket log
        PeriodicTask("dispatch", 0, dispatch),
        PeriodicTask("device state", 0, save_device_state),
        PeriodicTask("status", 1, report_status),
        PeriodicTask("claims", node.config.claim_check_seconds, check_claims),
        PeriodicTask("forecast", node.config.forecast_check_seconds, publish_forecast),
        PeriodicTask("earning", node.config.eligibility_check_seconds, check_earning),
    ]).run(stop, turn_seconds=0.1)
    if publisher is not None:
        publisher.close()
    for device in node.devices:
        device.driver.stop()
