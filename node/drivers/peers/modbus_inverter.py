"""A simulated battery inverter behind a real pymodbus TCP server.

The registers follow a `RegisterMap` (by default node.drivers.register_map.default_register_map).
The physics is the node's own battery simulator (node.devices.battery.Battery), advanced to the
wall clock on every request: the power, energy-counter and SoC registers are refreshed from it
before each read, and a write to the charge-limit register becomes the battery's setpoint (a
limit at or above the battery's maximum charge power lifts it).
"""

from __future__ import annotations

import logging
import math
import time

from node.devices.battery import Battery, BatteryParams
from node.drivers.register_map import RegisterMap, RegisterPoint, default_register_map

log = logging.getLogger("negawatt.peers.modbus")
HOLDING_WRITES = (6, 16, 23)


class InverterPeer:
    """A pymodbus server whose registers are a simulated home battery's."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5020, *, register_map: RegisterMap | None = None,
                 device_id: int = 1, max_charge_w: int = 5_000, capacity_wh: int = 20_000,
                 initial_soc: float = 0.3, energy_offset_wh: int = 1_234_567):
        self.host, self.port, self.device_id = host, port, device_id
        self.map = register_map or default_register_map()
        self.max_charge_w = max_charge_w
        self.energy_offset_wh = energy_offset_wh
        # Charges around the clock until full (a grid-charging battery), no discharge window.
        self.battery = Battery("peer-battery", BatteryParams(
            capacity_wh=capacity_wh, initial_soc=initial_soc, max_charge_w=max_charge_w, max_soc=0.95,
            charge_windows=[(0.0, 24.0)], discharge_windows=[], step_seconds=1), start_time=time.time())
        self.charge_limit_w = max_charge_w
        self.discharge_limit_w = max_charge_w
        self.writes: list[tuple[int, list[int]]] = []
        self._server = None
        self._registers: list[int] | None = None
        self._start_address = 0

    # -- the server ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on host:port (must run on an asyncio loop that keeps running)."""
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        addresses = [a for point in self.map.points().values() for a in point.span]
        addresses += [p.scale_register for p in self.map.points().values() if p.scale_register is not None]
        self._start_address, last = min(addresses), max(addresses)
        block = SimData(self._start_address, count=last - self._start_address + 1, values=0,
                        datatype=DataType.REGISTERS)
        device = SimDevice(self.device_id, simdata=[block], action=self._action)
        self._server = ModbusTcpServer(device, address=(self.host, self.port))
        await self._server.serve_forever(background=True)
        log.info("inverter peer listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Close the listener and every connection."""
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
            self._registers = None

    # -- physics <-> registers -------------------------------------------------------------------

    def _put(self, registers: list[int], point: RegisterPoint, value: float, sf: int) -> None:
        if point.scale_register is None:
            sf = point.scale  # a fixed scale factor of the map
        raw = math.floor(value / 10.0 ** sf + 1e-9) if point.type == "acc32" else round(value / 10.0 ** sf)
        offset = point.address - self._start_address
        registers[offset:offset + point.width] = self.map.encode(point, raw)
        if point.scale_register is not None:
            registers[point.scale_register - self._start_address] = sf & 0xFFFF

    def _refresh(self, registers: list[int]) -> None:
        self.battery.advance(time.time())
        m = self.map
        self._put(registers, m.power, m.power_sign * self.battery.power_w(), 0)
        self._put(registers, m.energy, self.energy_offset_wh + self.battery.energy_wh(), 0)
        if m.soc is not None:
            self._put(registers, m.soc, self.battery.soc() * 100, -1)
        self._put(registers, m.charge_limit, self.charge_limit_w, 0)
        if m.discharge_limit is not None:
            self._put(registers, m.discharge_limit, self.discharge_limit_w, 0)

    def _limit_written(self, point: RegisterPoint, address: int, values: list[int]) -> int | None:
        offset = point.address - address
        if 0 <= offset and offset + point.width <= len(values):
            return self.map.decode(point, list(values[offset:offset + point.width]))
        return None

    async def _action(self, function_code: int, start_address: int, address: int, count: int,
                      registers: list[int], set_values) -> None:
        self._registers = registers
        self._refresh(registers)
        if set_values is None or function_code not in HOLDING_WRITES:
            return
        values = [int(v) for v in set_values]
        self.writes.append((address, values))
        charge = self._limit_written(self.map.charge_limit, address, values)
        if charge is not None:
            self.charge_limit_w = charge
            if charge >= self.max_charge_w:
                self.battery.restore()
            else:
                self.battery.apply_setpoint(charge, "modbus charge limit")
            log.info("inverter peer: charge limit %d W", charge)
        if self.map.discharge_limit is not None:
            discharge = self._limit_written(self.map.discharge_limit, address, values)
            if discharge is not None:
                self.discharge_limit_w = discharge
        return

    def snapshot(self) -> dict:
        """The inverter's state now (call on the peer's loop, or when it is idle)."""
        self.battery.advance(time.time())
        return {"power_w": self.battery.power_w(), "energy_wh": self.energy_offset_wh + self.battery.energy_wh(),
                "soc": self.battery.soc(), "charge_limit_w": self.charge_limit_w,
                "discharge_limit_w": self.discharge_limit_w, "listening": self._server is not None}
