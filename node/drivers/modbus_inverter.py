"""A battery inverter over Modbus TCP (pymodbus), through a configurable SunSpec-style register map.

Every `poll_seconds` the driver reads power, the energy counter and the state of charge (and the
scale-factor registers they name); curtailment writes the charge limit (W) and confirms it by
reading it back and waiting for the power to follow; restore writes back the limit the inverter had
before the first curtailment (or `restore_charge_limit_w`). A connection that fails is dropped
and retried with back-off (node.drivers.live).
"""

from __future__ import annotations

import asyncio
import logging

from node.devices.interface import SetpointResult
from node.drivers.live import DriverError, LiveDevice
from node.drivers.register_map import RegisterPoint, decode_sunssf
from node.drivers.settings import ModbusSettings

log = logging.getLogger("negawatt.node.drivers.modbus")


class ModbusInverter(LiveDevice):
    """A home battery's inverter reached over Modbus TCP."""

    driver_name = "modbus"

    def __init__(self, device_id: str, kind: str, capacity_w: int, settings: ModbusSettings):
        super().__init__(device_id, kind, capacity_w, settings)
        self.settings: ModbusSettings = settings
        self.map = settings.register_map
        self._client = None
        self._io = None  # asyncio.Lock, made on the drivers' loop
        self._original_limit_w: int | None = None

    async def _connect(self) -> None:
        from pymodbus.client import AsyncModbusTcpClient

        self._io = asyncio.Lock()
        s = self.settings
        self._client = AsyncModbusTcpClient(s.host, port=s.port, timeout=s.timeout_seconds, retries=0,
                                            reconnect_delay=0, name=f"negawatt-{self.device_id[:10]}")
        if not await self._client.connect():
            raise ConnectionError(f"cannot connect to {s.host}:{s.port}")
        await self._poll()

    async def _disconnect(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _serve(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_seconds)
            await self._poll()

    async def _refresh(self) -> None:
        await self._poll()

    # -- registers -------------------------------------------------------------------------------

    async def _registers(self, table: str, address: int, count: int) -> list[int]:
        client = self._client
        if client is None or not client.connected:
            raise ConnectionError("not connected")
        read = client.read_holding_registers if table == "holding" else client.read_input_registers
        from pymodbus.exceptions import ModbusException

        try:
            response = await read(address, count=count, device_id=self.settings.device_id)
        except ModbusException as error:
            raise ConnectionError(str(error)) from None
        if response.isError():
            raise DriverError(f"exception response reading {table} register {address}: {response}")
        return list(response.registers)

    async def _value(self, point: RegisterPoint) -> float | None:
        raw = self.map.decode(point, await self._registers(point.table, point.address, point.width))
        if raw is None:
            return None
        return raw * 10.0 ** await self._scale(point)

    async def _scale(self, point: RegisterPoint) -> int:
        if point.scale_register is None:
            return point.scale
        sf = decode_sunssf((await self._registers(point.table, point.scale_register, 1))[0])
        if sf is None:
            raise DriverError(f"scale factor at {point.scale_register} is not implemented")
        return sf

    async def _write_w(self, point: RegisterPoint, watts: int) -> None:
        raw = round(watts / 10.0 ** await self._scale(point))
        registers = self.map.encode(point, raw)
        from pymodbus.exceptions import ModbusException

        try:
            response = await self._client.write_registers(point.address, registers, device_id=self.settings.device_id)
        except ModbusException as error:
            raise ConnectionError(str(error)) from None
        if response.isError():
            raise DriverError(f"exception response writing register {point.address}: {response}")

    async def _poll(self) -> None:
        async with self._io:
            power = await self._value(self.map.power)
            energy = await self._value(self.map.energy)
            soc = await self._value(self.map.soc) if self.map.soc is not None else None
            limit = await self._value(self.map.charge_limit)
        if power is None or energy is None:
            raise DriverError("the inverter reports power or energy as not implemented")
        signed = self.map.power_sign * power
        details = {"soc": None if soc is None else round(soc / 100, 4), "charge_limit_w": limit,
                   "discharge_w": round(max(0.0, -signed))}
        self._store(round(max(0.0, signed)), int(energy + 1e-9), **details)

    # -- control ---------------------------------------------------------------------------------

    async def _apply(self, max_power_w: int) -> SetpointResult:
        async with self._io:
            if self._original_limit_w is None:
                current = await self._value(self.map.charge_limit)
                self._original_limit_w = None if current is None else round(current)
            await self._write_w(self.map.charge_limit, max_power_w)
            readback = await self._value(self.map.charge_limit)
        if readback is None or round(readback) != max_power_w:
            await self._poll()
            return SetpointResult(self.device_id, max_power_w, self._reading.power_w, False,
                                  f"the inverter kept its charge limit at {readback} W")
        power = await self._wait_for_power(max_power_w)
        honoured = 0 <= power <= max_power_w
        return SetpointResult(self.device_id, max_power_w, power, honoured,
                              "" if honoured else f"still charging at {power} W after {self.settings.confirm_seconds:g} s")

    async def _restore(self) -> None:
        target = self._original_limit_w if self._original_limit_w is not None else self.settings.restore_charge_limit_w
        if target is None:
            target = self.capacity_w
        async with self._io:
            await self._write_w(self.map.charge_limit, target)
            readback = await self._value(self.map.charge_limit)
        if readback is None or round(readback) != target:
            raise DriverError(f"the inverter kept its charge limit at {readback} W instead of {target} W")
        self._original_limit_w = None
        await self._poll()
