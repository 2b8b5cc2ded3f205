"""A whole negawatt network on one machine: anvil, the contracts, k-of-n oracles, the API and N nodes.

Every role runs as its own process (`negawatt oracle run`, `negawatt api serve`, `negawatt node run`)
with its configuration, keys, database and log under one run folder, as it would on separate machines.
The devnet itself only does what an operator would do by hand: start the chain and deploy, bond and
add the oracles, create each node's keys and configuration, fund and register the devices, and
backfill the simulated devices' history into each node's outbox (a real node would have metered it).

Time: anvil starts an hour before the event's hour of day (`DevnetSpec.event_hour_utc`), so the demo
sees evening load whatever the wall clock says, and the chain's clock can be moved forward
(`warp_to`, anvil's evm_increaseTime). The roles follow the chain's clock (protocol.clock), so
history days and 15-minute intervals pass in seconds.
`negawatt devnet up` also runs a keeper (negawatt.devnet.keeper) that mines on an interval with the
chain's clock at `time_scale`; the demo runs without one and warps instead.
"""

from __future__ import annotations

import json
import logging
import math
import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import httpx
from pydantic import BaseModel, Field, model_validator

from negawatt.devnet.capability import TESTER
from negawatt.devnet.processes import ProcessGroup
from negawatt.localchain import ANVIL_KEYS, REPO, deploy, free_port

log = logging.getLogger("negawatt.devnet")
TOKEN = 10**18
DAY = 86_400
KINDS = ("ev_charger", "heat_pump", "hvac", "battery", "water_heater", "household")
DEFAULT_KINDS = ("ev_charger", "heat_pump", "hvac", "battery", "water_heater")  # the household is in the site meter
HOUSEHOLD_MAX_W = 9_000  # the simulated household's own limit (node.devices.household)
PASSWORD_ENV = "NEGAWATT_DEVNET_PASSWORD"
# The devnet's oracles take batches of up to 12 days of 15-minute readings, so each device's backfilled
# history goes to each oracle in one or two requests instead of one per day (the history's delivery
# was the demo's longest step: 2,640 requests for 20 nodes). Live metering still sends one interval.
HISTORY_BATCH_READINGS = 1_152


def owner_policy(name: str) -> dict[str, int]:
    """A node owner's price settings: a minimum from 0.04 to 0.26 mUSD per kWh, spread over the nodes
    by their number (so the merit order has something to sort), a quarter of each offer in a second
    tranche at 50 % more, and, for a request that pays availability, a minimum from 0.005 to 0.04
    mUSD per kW per hour. The demo buyer's ceilings are 0.30 mUSD per kWh and 0.05 per kW·h."""
    number = int(name.rsplit("-", 1)[-1]) if name.rsplit("-", 1)[-1].isdigit() else 0
    return {"min_price_per_kwh": 40_000 + (number * 37_000) % 230_000, "extra_share_bps": 2_500,
            "extra_premium_bps": 5_000, "min_availability_price_per_kwh": 5_000 + (number * 13_000) % 36_000}


class DevnetError(RuntimeError):
    """The devnet could not be brought up or a step did not happen in time; the message says which."""


class DevnetSpec(BaseModel):
    """The shape of a devnet and of its demo event."""

    model_config = {"extra": "forbid"}

    nodes: int = Field(20, ge=1, le=200)
    devices_per_node: int = Field(3, ge=1, le=10)
    zones: int = Field(1, ge=1, le=20, description="one zone by default, so a 20-site holdout has a control group")
    oracles: int = Field(3, ge=1, le=7)
    threshold: int = Field(2, ge=1)
    interval_seconds: int = Field(900, ge=60, le=3_600)
    history_days: int = Field(11, ge=2, le=45, description="backfilled history per device")
    event_hour_utc: int = Field(18, ge=0, le=23, description="the hour of day the demo event starts")
    event_intervals: int = Field(4, ge=1, le=96)
    quality_days: int = Field(5, ge=2, le=10)
    max_rrmse_bps: int = Field(2_000, ge=0, description="the quality gate of the settlement unit (portfolio or site)")
    site_meters: bool = Field(True, description="every node meters its premises with a site meter")
    holdout_bps: int = Field(5_000, ge=0, le=5_000,
                             description="share of committed sites held out (a 20-site demo needs half for 5+)")
    gate_lead_seconds: int = Field(900, ge=0, le=86_400, description="commitments close this long before the start")
    capability_test_bps: int = Field(2_000, ge=0, le=10_000,
                                     description="share of a zone's sites each capability test draws "
                                                 "(`negawatt devnet test-capability`)")
    capability_probation_w: int = Field(1_500, ge=0, description="the most a site that never passed a capability "
                                                                 "test may offer in one request, W")
    api: bool = Field(True, description="run the API service")
    claim_check_seconds: int = Field(5, ge=1)
    oracle_refresh_seconds: int = Field(30, ge=1, description="how often nodes re-read the oracle set")
    hardware: bool = Field(False, description="one more node driving simulated Modbus, OCPP and MQTT peers")
    kinds: list[str] = Field(default_factory=lambda: list(DEFAULT_KINDS), min_length=1,
                             description="device kinds, given to the nodes' devices in turn")

    @model_validator(mode="after")
    def _consistent(self) -> "DevnetSpec":
        if self.threshold > self.oracles:
            raise ValueError(f"threshold ({self.threshold}) exceeds the number of oracles ({self.oracles})")
        if DAY % self.interval_seconds:
            raise ValueError(f"interval_seconds ({self.interval_seconds}) must divide a day")
        unknown = [kind for kind in self.kinds if kind not in KINDS]
        if unknown:
            raise ValueError(f"unknown device kinds {unknown}; known: {', '.join(KINDS)}")
        if self.nodes < self.zones:
            raise ValueError(f"{self.nodes} node(s) cannot fill {self.zones} zones")
        return self


@dataclass
class OracleHandle:
    """One oracle process of the devnet."""

    name: str
    address: str
    url: str
    config: Path


@dataclass
class NodeHandle:
    """One node of the devnet: its folder, owner, zone and devices (address, kind, capacity W)."""

    name: str
    directory: Path
    owner: str
    zone: int
    devices: list[tuple[str, str, int]]

    @property
    def config(self) -> Path:
        return self.directory / "node.toml"

    def outbox(self) -> Any:
        """The node's outbox, read-only (node.outbox.Outbox.reader: the devnet watches progress; the
        node owns the file). FileNotFoundError before the node created it."""
        from node.outbox import Outbox

        return Outbox.reader(self.directory / "node-data" / "outbox.sqlite")

    def participations(self) -> list[Any]:
        """The node's participations (node.dispatch.Participation), none before its dispatch began."""
        from node.dispatch import open_dispatch_reader, participations

        path = self.directory / "node-data" / "dispatch.sqlite"
        if not path.exists():
            return []
        db = open_dispatch_reader(str(path))
        try:
            return participations(db)
        finally:
            db.close()


@dataclass
class Devnet:
    """A running devnet; `up()` brings it up step by step, `stop()` takes it down."""

    spec: DevnetSpec
    run_dir: Path
    on_step: Callable[[str], None] = lambda message: None
    group: ProcessGroup = field(init=False)
    rpc_url: str = ""
    manifest_path: Path = field(init=False)
    web3: Any = None
    manifest: Any = None
    admin: Any = None
    buyer: Any = None
    oracles: list[OracleHandle] = field(default_factory=list)
    nodes: list[NodeHandle] = field(default_factory=list)
    api_url: str | None = None
    history_end: int = 0
    event_start: int = 0
    deployed_block: int = 0
    time_scale: float = 1.0  # chain seconds per wall second once a keeper runs (devnet up; the demo warps)

    def __post_init__(self) -> None:
        self.run_dir = self.run_dir.resolve()  # the roles' configs name their files by absolute path
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.group = ProcessGroup(self.run_dir)
        self.manifest_path = self.run_dir / "manifest.json"
        self.password = secrets.token_hex(16)
        self.env = {PASSWORD_ENV: self.password}

    # -- bringing it up ---------------------------------------------------------------------------

    def up(self, progress: Callable[[int], None] = lambda done: None) -> None:
        """Chain, contracts, oracles, API and nodes, each ready before the next step starts.
        `progress(done)` follows the node set-up (0 when it starts, then once per node)."""
        self.start_chain()
        self.setup_oracles()
        self.start_oracles()
        if self.spec.api:
            self.start_api()
        self.create_nodes(progress)
        devices = sum(len(n.devices) for n in self.nodes)
        self.on_step(f"{len(self.nodes)} nodes with {devices} devices registered in {self.spec.zones} zones, "
                     f"{self.spec.history_days} days of history each")
        if self.spec.hardware:
            self.create_hardware_node()
        self.start_nodes()
        self.on_step("node daemons started")

    def plan_times(self, wall: float | None = None) -> None:
        """Fix the event's start (the next `event_hour_utc` at least two hours ahead) and the history end."""
        wall = time.time() if wall is None else wall
        hour = self.spec.event_hour_utc * 3_600
        start = (int(wall) // DAY) * DAY + hour
        while start < wall + 2 * 3_600:
            start += DAY
        self.event_start = start
        # History ends an hour before the event: the same-day adjustment window (3 h, ending 1 h before
        # the start) lies in it, and live metering has begun by the time the event starts.
        self.history_end = start - 3_600

    def start_chain(self) -> None:
        """anvil (its clock set just after the history's end) and `ape run deploy`."""
        from protocol.chain import Transactor, connect
        from protocol.manifest import load_manifest

        self.plan_times()
        port = free_port()
        self.rpc_url = f"http://127.0.0.1:{port}"
        anvil = str(REPO / "node_modules" / ".bin" / "anvil")
        if not Path(anvil).exists():
            raise DevnetError("anvil is not installed: run `make setup` (npm ci)")
        self.group.start("anvil", [anvil, "--port", str(port), "--timestamp", str(self.history_end + 60),
                                   "--accounts", "10", "--silent"])
        wait_for(lambda: _rpc_up(self.rpc_url), 30, "anvil to answer", self.group)
        self.on_step(f"anvil on {self.rpc_url}; deploying the contracts")
        deploy(self.rpc_url, self.manifest_path, {
            "challenge_window": 300, "min_duration": self.spec.interval_seconds, "min_oracle_bond": TOKEN,
            "bond_per_kw": TOKEN, "unbonding_delay": 3_600, "threshold": 1, "challenge_bond": TOKEN,
            "oracle_slash_amount": TOKEN, "holdout_bps": self.spec.holdout_bps,
            "gate_lead_seconds": self.spec.gate_lead_seconds,
            "capability_tester": TESTER, "capability_test_bps": self.spec.capability_test_bps,
            "capability_probation_w": self.spec.capability_probation_w,
        })
        self.web3 = connect(self.rpc_url)
        self.manifest = load_manifest(self.manifest_path)
        self.deployed_block = self.manifest.start_block
        abis = [entry.abi for entry in self.manifest.contracts.values()]
        self.admin = Transactor(self.web3, ANVIL_KEYS[0], abis=abis)
        self.buyer = Transactor(self.web3, ANVIL_KEYS[1], abis=abis)
        token = self.contract("NegawattToken")
        self.admin.send(token.functions.grantRole(token.functions.MINTER_ROLE().call(), self.admin.address))

    def contract(self, name: str) -> Any:
        return self.manifest.contract(self.web3, name)

    def setup_oracles(self) -> None:
        """Bond and add the oracles (anvil keys 2..), write their keystores and configurations."""
        for _ in range(self.spec.oracles):
            self._enrol_oracle()
        self.admin.send(self.contract("OracleHub").functions.setThreshold(self.spec.threshold))
        self.on_step(f"{self.spec.oracles} oracles bonded, threshold {self.spec.threshold}")

    def _enrol_oracle(self) -> OracleHandle:
        """Bond the next oracle key, add it to the OracleHub, write its keystore and configuration."""
        from oracle.config import OracleConfig
        from protocol.chain import Transactor
        from protocol.config_files import file_model, write_toml
        from protocol.keys import write_keystore

        token, staking, hub = self.contract("NegawattToken"), self.contract("Staking"), self.contract("OracleHub")
        abis = [entry.abi for entry in self.manifest.contracts.values()]
        folder = self.run_dir / "oracles"
        index = len(self.oracles)
        if 2 + index >= len(ANVIL_KEYS):
            raise DevnetError(f"at most {len(ANVIL_KEYS) - 2} oracles on a devnet")
        key = ANVIL_KEYS[2 + index]
        oracle = Transactor(self.web3, key, abis=abis)
        self.admin.send(token.functions.mint(oracle.address, 10 * TOKEN))
        oracle.send(token.functions.approve(staking.address, 10 * TOKEN))
        oracle.send(staking.functions.stake(10 * TOKEN))
        self.admin.send(hub.functions.addOracle(oracle.address))
        name = f"oracle-{index + 1}"
        keystore = folder / f"{name}.json"
        write_keystore(keystore, key, self.password, kdf="pbkdf2")
        port = free_port()
        config = folder / f"{name}.toml"
        write_toml(config, file_model(OracleConfig, {
            "rpc_url": self.rpc_url, "manifest": str(self.manifest_path),
            "database_url": f"sqlite:///{folder / (name + '.sqlite')}", "keystore": str(keystore),
            "password_env": PASSWORD_ENV, "port": port, "poll_seconds": 1, "data_grace_seconds": 120,
            "stagger_seconds": 4, "max_readings": HISTORY_BATCH_READINGS,
            # CAISO like-days (10 weekdays / 4 weekend days), at least 5 of the 11 days of history;
            # sites take no same-day adjustment (oracle.epoch.OracleEconomics.site_adjustment)
            "economics": {"interval_seconds": self.spec.interval_seconds, "method": "caiso-10in10", "min_days": 4,
                          "adjustment": "ratio", "quality_days": self.spec.quality_days, "estimator": "did",
                          "max_rrmse_bps": self.spec.max_rrmse_bps},
        }))
        handle = OracleHandle(name, oracle.address, f"http://127.0.0.1:{port}", config)
        self.oracles.append(handle)
        return handle

    def add_oracle(self) -> OracleHandle:
        """Enrol one more oracle into a running network and start it (the nodes pick it up from the hub)."""
        handle = self._enrol_oracle()
        self._start_oracle_processes([handle])
        return handle

    def start_oracles(self) -> None:
        """`negawatt oracle run` for each oracle; ready when each serves and published its URL on-chain."""
        self._start_oracle_processes(self.oracles)
        self.on_step("oracles serving: " + ", ".join(o.url for o in self.oracles))

    def _start_oracle_processes(self, oracles: list[OracleHandle]) -> None:
        env = {**self.env, **self.oracle_clock_env()}
        for oracle in oracles:
            self.group.start(oracle.name, [_negawatt(), "oracle", "run", "--config", str(oracle.config)],
                             env=env, cwd=REPO)
        hub = self.contract("OracleHub")
        for oracle in oracles:
            wait_for(lambda o=oracle: _http_ok(f"{o.url}/v1/health"), 90, f"{oracle.name} to serve", self.group)
        wait_for(lambda: sum(1 for url in hub.functions.oracles().call()[1] if url) == len(self.oracles), 60,
              "the oracles to publish their URLs", self.group)

    def start_api(self) -> None:
        """`negawatt api serve` (indexer and REST) on a free port."""
        port = free_port()
        self.api_url = f"http://127.0.0.1:{port}"
        self.group.start("api", [_negawatt(), "api", "serve", "--manifest", str(self.manifest_path), "--rpc-url",
                                 self.rpc_url, "--database-url", f"sqlite:///{self.run_dir / 'api.sqlite'}",
                                 "--port", str(port), "--confirmations", "0", "--poll-seconds", "0.5"],
                         env=self.env, cwd=REPO)
        wait_for(lambda: _http_ok(f"{self.api_url}/v1/health"), 90, "the API to serve", self.group)
        self.on_step(f"API serving on {self.api_url} (the web app: {self.api_url}/)")

    def zone_of(self, node_index: int) -> int:
        """A node's zone: consecutive nodes fill one cycle of the device kinds, and each cycle goes to
        the next zone, so every zone gets every kind."""
        cycle = node_index * self.spec.devices_per_node // len(self.spec.kinds)
        return 1 + cycle % self.spec.zones

    def device_plan(self, node_index: int) -> list[str]:
        """The kinds of a node's devices: the kinds in turn, so every kind is in every zone."""
        kinds = self.spec.kinds
        return [kinds[(node_index * self.spec.devices_per_node + j) % len(kinds)]
                for j in range(self.spec.devices_per_node)]

    def _enrol_node(self, name: str, specs: list[Any], zone: int, device_entries: list[dict[str, Any]] | None = None):
        """A node's keys and node.toml (its `[[devices]]` tables from `device_entries`, one per spec
        without its keystore, when given), its owner funded with gas and protocol tokens, its devices
        registered and bonded.
        Returns the opened node (the caller closes its outbox) and what `init_node` wrote."""
        from node.config import NodeConfig, load_config
        from node.runtime import open_node, register
        from node.setup import init_node
        from protocol.config_files import file_model, read_toml, write_toml

        token, stablecoin = self.contract("NegawattToken"), self.contract("MockStablecoin")
        made = init_node(self.run_dir / "nodes" / name, specs, self.password, zone=zone, rpc_url=self.rpc_url,
                         manifest=self.manifest_path, interval_seconds=self.spec.interval_seconds,
                         password_env=PASSWORD_ENV,
                         extra={"confirmations": 0, "claim_check_seconds": self.spec.claim_check_seconds,
                                "claim_gas_multiple": 1, "oracle_refresh_seconds": self.spec.oracle_refresh_seconds,
                                "value_wei_per_unit": {stablecoin.address: 10**12, token.address: 1},
                                "policy": owner_policy(name),
                                **({"api_url": self.api_url, "forecast_check_seconds": 2} if self.api_url else {})})
        if device_entries is not None:
            settings = read_toml(made.config_path)
            settings["devices"] = [{"keystore": device["keystore"], **entry}
                                   for device, entry in zip(settings["devices"], device_entries, strict=True)]
            write_toml(made.config_path, file_model(NodeConfig, settings))
        self.web3.provider.make_request("anvil_setBalance", [made.owner, hex(10 * 10**18)])
        self.admin.send(token.functions.mint(made.owner, 100 * TOKEN))
        os.environ[PASSWORD_ENV] = self.password  # open_node reads the keystores' password from there
        node = open_node(load_config(made.config_path))
        register(node)
        self.nodes.append(NodeHandle(name, made.config_path.parent, made.owner, zone,
                                     [(a, s.kind, s.capacity_w) for a, s in made.devices]))
        return node, made

    def create_nodes(self, progress: Callable[[int], None] = lambda done: None) -> None:
        """The simulated nodes, enrolled, with their devices' history signed into their outboxes."""
        from node.device_state import DeviceStateStore
        from node.devices.factory import backfill_with_state, build_device
        from node.metering import MeteredDevice, enqueue_history
        from node.setup import DeviceSpec

        oracle_urls = [o.url for o in self.oracles]
        interval = self.spec.interval_seconds
        history_start = self.history_end - self.spec.history_days * DAY
        progress(0)
        for index in range(self.spec.nodes):
            specs = []
            for j, kind in enumerate(self.device_plan(index)):
                seed = index * 16 + j
                capacity = build_device({"kind": kind, "device_id": "plan", "seed": seed}).max_power_w
                specs.append(DeviceSpec(kind, capacity, {"seed": seed}))
            if self.spec.site_meters:
                # the connection's rating: whatever the household and every device could draw at once
                rating = HOUSEHOLD_MAX_W + sum(spec.capacity_w for spec in specs)
                specs.append(DeviceSpec("site_meter", rating, {"seed": index * 16 + 15}))
            node, _ = self._enrol_node(f"node-{index + 1:02d}", specs, self.zone_of(index))
            state = DeviceStateStore(node.config.data_dir / "devices.sqlite")
            histories = {}
            for device in node.devices:
                if device.address == node.site:
                    continue
                readings, simulator = backfill_with_state(device.driver, history_start, self.history_end, interval)
                state.save([(device.address, simulator)])  # the node's devices continue from their history
                histories[device.address] = readings
            for device in node.devices:
                if device.address == node.site:  # the site meter: its household plus the devices, to the Wh
                    household, simulator = backfill_with_state(device.driver.household, history_start,
                                                               self.history_end, interval)
                    state.save([(device.address, simulator)])
                    histories[device.address] = [h + sum(r[k] for r in histories.values())
                                                 for k, h in enumerate(household)]
                enqueue_history(node.outbox, MeteredDevice(device.address, device.key, device.driver), history_start,
                                histories[device.address], interval, self.manifest.chainId,
                                self.manifest.address("DeviceRegistry"), oracle_urls,
                                batch_readings=HISTORY_BATCH_READINGS)
            state.close()
            node.outbox.close()
            progress(index + 1)

    def create_hardware_node(self) -> NodeHandle:
        """A node whose devices are reached over real protocols: a Modbus TCP battery inverter, an OCPP
        EV charger and an MQTT plug, each a simulated peer process (node.drivers.peers) on loopback.
        It has no backfilled history (real drivers have none to give), so it meters and curtails
        live; the oracles find its devices' baselines insufficient until days of readings exist."""
        from node.drivers.peers import start_peers
        from node.setup import DeviceSpec

        if not any(Path(p, "mosquitto").exists() for p in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/sbin"]):
            raise DevnetError("--hardware needs Debian's mosquitto broker (`make mosquitto`, as root)")
        try:
            peers = start_peers(self.run_dir / "peers")
        except RuntimeError as error:
            raise DevnetError(f"the simulated peers did not start: {error}") from None
        for index, popen in enumerate(peers.processes):
            self.group.adopt("peers" if index == len(peers.processes) - 1 else "mosquitto", popen, peers.log_path)
        specs = [DeviceSpec(entry["kind"], entry["capacity_w"]) for entry in peers.devices]
        node, _ = self._enrol_node("node-hw", specs, 1, peers.devices)
        node.outbox.close()
        self.on_step(f"node-hw drives a Modbus inverter (port {peers.ports['modbus']}), an OCPP charger "
                     f"(Central System on port {peers.ports['ocpp']}) and an MQTT plug (broker port {peers.ports['mqtt']})")
        return self.nodes[-1]

    def start_nodes(self) -> None:
        """`negawatt node run` for every node."""
        for node in self.nodes:
            self.start_node(node)

    def start_node(self, node: NodeHandle) -> None:
        self.group.start(node.name, [_negawatt(), "node", "run", "--config", str(node.config)], env=self.env,
                         cwd=node.directory)

    # -- watching and driving it ------------------------------------------------------------------

    def chain_time(self) -> int:
        return self.web3.eth.get_block("latest")["timestamp"]

    def warp_to(self, timestamp: int) -> None:
        """Move the chain's clock forward to `timestamp` (never back) and mine a block there."""
        self.web3.provider.make_request("evm_setNextBlockTimestamp", [max(timestamp, self.chain_time() + 1)])
        self.web3.provider.make_request("evm_mine", [])

    def outbox_pending(self) -> int:
        """Deliveries (readings, commitments) the nodes still owe the oracles that are running."""
        live = [o.url for o in self.oracles if self.group.processes.get(o.name) and self.group.processes[o.name].alive()]
        total = 0
        for node in self.nodes:
            try:
                outbox = node.outbox()
            except FileNotFoundError:
                total += 1  # not created yet
                continue
            try:
                depth = outbox.depth()
            finally:
                outbox.close()
            total += sum(depth.get(url, 0) for url in live)
        return total

    def metered_to(self) -> int:
        """The boundary every device of every node has been metered to (the minimum)."""
        lowest = None
        for node in self.nodes:
            outbox = node.outbox()
            try:
                boundaries = outbox.metered_boundaries()
            finally:
                outbox.close()
            if len(boundaries) < len(node.devices):
                return 0
            low = min(boundaries.values())
            lowest = low if lowest is None else min(lowest, low)
        return lowest or 0

    def participations(self, state: str | None = None) -> list[tuple]:
        """(node, request id, device, watts, state, latency ms) of every node's participations."""
        return [(node.name, p.request_id, p.device, p.watts, p.state, p.latency_ms)
                for node in self.nodes for p in node.participations() if state is None or p.state == state]

    def real_devices_available(self) -> bool:
        """Whether every device of the node that drives real protocols answers (its status file)."""
        for node in self.nodes:
            if node.name != "node-hw":
                continue
            try:
                devices = json.loads((node.directory / "node-data" / "device-status.json").read_text())["devices"]
            except (FileNotFoundError, json.JSONDecodeError, KeyError):
                return False
            if len(devices) < len(node.devices) or not all(d.get("available") for d in devices.values()):
                return False
        return True

    def check_alive(self, allowed_dead: set[str] = frozenset()) -> None:
        """Raise DevnetError if a process died that nobody stopped."""
        dead = [p for p in self.group.dead() if p.name not in allowed_dead]
        if dead:
            process = dead[0]
            raise DevnetError(f"{process.name} exited (code {process.popen.returncode}); its log "
                              f"{process.log_path} ends with:\n{process.log_tail()}")

    def stop(self) -> None:
        """Stop every process of the devnet."""
        self.group.stop_all()

    # -- keeping time, and what a newcomer needs (devnet up) --------------------------------------

    def oracle_clock_env(self) -> dict[str, str]:
        """The oracle settings that are durations on the chain's clock but must cover wall-clock work
        (an upload, a peer's answer, two clocks read a second apart): with the chain running
        `time_scale` times faster (negawatt.devnet.keeper) each covers at least as many wall seconds
        as the fast clock needs: data grace 10 s, proposer stagger 3 s, clock skew 5 s, clearing
        delay 3 s (at most a third of the gate lead). Empty in real time (the demo warps instead)."""
        if self.time_scale <= 1:
            return {}
        scale = self.time_scale
        clearing = max(20, math.ceil(3 * scale))
        if self.spec.gate_lead_seconds:
            clearing = min(clearing, max(20, self.spec.gate_lead_seconds // 3))
        return {"NEGAWATT_ORACLE_DATA_GRACE_SECONDS": str(max(120, math.ceil(10 * scale))),
                "NEGAWATT_ORACLE_STAGGER_SECONDS": str(max(4, math.ceil(3 * scale))),
                "NEGAWATT_ORACLE_CLOCK_SKEW_SECONDS": str(min(3_600, max(60, math.ceil(5 * scale)))),
                "NEGAWATT_ORACLE_CLEARING_DELAY_SECONDS": str(min(3_600, clearing))}

    def start_keeper(self, block_time: float) -> Any:
        """Mine a block every `block_time` s with the chain's clock at `time_scale` (keeper.Keeper)."""
        from negawatt.devnet.keeper import Keeper

        return Keeper(self.web3, self.time_scale, block_time).start()

    def write_network_profile(self, block_time: float | None) -> Path:
        """RUN_DIR/network.json (protocol.network_profile): how other tools join this devnet."""
        from protocol.network_profile import NetworkProfile, write_profile

        return write_profile(self.run_dir, NetworkProfile(
            name="devnet", chain_id=self.manifest.chainId, rpc_url=self.rpc_url, manifest=self.manifest_path,
            api_url=self.api_url, oracle_urls=[o.url for o in self.oracles], confirmations=0,
            interval_seconds=self.spec.interval_seconds, block_time_seconds=block_time,
            time_scale=self.time_scale))

    def write_accounts(self) -> Any:
        """RUN_DIR/accounts.json with the buyer's and a spare owner's keystores (negawatt.devnet.accounts)."""
        from negawatt.devnet.accounts import create_accounts

        return create_accounts(self.run_dir, self.manifest.chainId, bytes(self.buyer.account.key),
                               self.admin.address, self.password)


def _negawatt() -> str:
    return str(Path(sys.executable).parent / "negawatt")


def _rpc_up(url: str) -> bool:
    try:
        return httpx.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []},
                          timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, group: ProcessGroup | None = None,
          allowed_dead: set[str] = frozenset()) -> Any:
    """Poll `predicate` until it returns something truthy; a dead process or the deadline raises."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if group is not None:
            dead = [p for p in group.dead() if p.name not in allowed_dead]
            if dead:
                raise DevnetError(f"{dead[0].name} exited while waiting for {what}; its log "
                                  f"{dead[0].log_path} ends with:\n{dead[0].log_tail()}")
        if time.monotonic() > deadline:
            raise DevnetError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.25)

