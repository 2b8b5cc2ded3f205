"""A site meter speaking SunSpec over Modbus TCP (pymodbus): meter models 201-204, integer + scale factor.

On connecting, the driver discovers the SunSpec map: the "SunS" marker (0x5375 0x6E53) at the base
address (40000, else 50000, else 0, unless `base_address` is set), then the chain of model headers
(ID, length L; the next model starts L + 2 registers further; ID 0xFFFF ends the map). It takes the
first meter model 201 (single phase), 202 (split phase), 203 (wye) or 204 (delta), or the one
`model` names. A missing marker, or a map without such a model, is a DriverError naming what was
found, so the device is unavailable with that reason (and retried with back-off).

Every `poll_seconds` it reads the model's points up to TotWh_SF in one request (one consistent
snapshot) and decodes, by the model's layout (offsets from the first register after the header):

    16  W         int16   total real power, W x 10^W_SF (`power_sign`: + is grid import)
    20  W_SF      sunssf
    44  TotWhImp  acc32   total real energy imported, Wh x 10^TotWh_SF
    52  TotWh_SF  sunssf

The four models share this layout. Import energy is a never-decreasing integer Wh counter
(node.drivers.site_meter.MonotonicCounter): the acc32 register wraps at 2^32 x 10^TotWh_SF Wh
(the modulus is added), any other drop is a meter reset (counting continues from the last value).
A positive scale factor makes the counter advance in steps of 10^TotWh_SF Wh. SunSpec's
"not implemented" W (0x8000) or scale factor (0x8000) is a DriverError.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import ROUND_HALF_EVEN, Decimal

from node.drivers.live import DriverError
from node.drivers.register_map import decode_sunssf
from node.drivers.settings import SunSpecMeterSettings
from node.drivers.site_meter import SiteMeterDevice

log = logging.getLogger("negawatt.node.drivers.sunspec")

SUNS_MARKER = (0x5375, 0x6E53)  # "SunS"
BASE_ADDRESSES = (40000, 50000, 0)
END_MODEL = 0xFFFF
METER_MODELS = {201: "single phase", 202: "split phase", 203: "wye (three phase)", 204: "delta (three phase)"}
METER_MODEL_LENGTH = 105  # registers after the header in models 201-204
# Offsets of the points the driver reads, from the first register after the model header.
W, W_SF, TOT_WH_IMP, TOT_WH_SF = 16, 20, 44, 52
READ_LENGTH = TOT_WH_SF + 1
MAX_MODELS = 64  # a map longer than this is not a meter's


def decode_int16(register: int) -> int | None:
    """A SunSpec int16 (0x8000 = not implemented)."""
    value = register - 0x10000 if register >= 0x8000 else register
    return None if value == -0x8000 else value


def decode_acc32(high: int, low: int) -> int:
    """A SunSpec acc32, high word first (an accumulator: 0 is a meter that counted nothing yet)."""
    return (high << 16) | low


def decode_meter_block(registers: list[int]) -> tuple[int, int, int, int]:
    """(power W rounded half to even, import Wh = raw x 10^sf floored to whole Wh, the register's wrap
    modulus in Wh, TotWh_SF)
    from the first READ_LENGTH registers of a model 201-204 block; DriverError for a point that is
    not implemented."""
    if len(registers) < READ_LENGTH:
        raise DriverError(f"the meter model block has {len(registers)} registers, need {READ_LENGTH}")
    raw_w = decode_int16(registers[W])
    try:
        w_sf, wh_sf = decode_sunssf(registers[W_SF]), decode_sunssf(registers[TOT_WH_SF])
    except ValueError as error:
        raise DriverError(str(error)) from None
    if raw_w is None or w_sf is None:
        raise DriverError("the meter reports W or W_SF as not implemented")
    if wh_sf is None:
        raise DriverError("the meter reports TotWh_SF as not implemented")
    raw_wh = decode_acc32(registers[TOT_WH_IMP], registers[TOT_WH_IMP + 1])
    power = int(Decimal(raw_w).scaleb(w_sf).to_integral_value(rounding=ROUND_HALF_EVEN))  # exact, no float
    # Energy in whole Wh: exact for sf >= 0; a negative sf (sub-Wh resolution) is floored.
    energy = raw_wh * 10 ** wh_sf if wh_sf >= 0 else raw_wh // 10 ** -wh_sf
    modulus = 2 ** 32 * 10 ** wh_sf if wh_sf >= 0 else max(1, 2 ** 32 // 10 ** -wh_sf)
    return power, energy, modulus, wh_sf


class SunSpecMeter(SiteMeterDevice):
    """A SunSpec site meter reached over Modbus TCP."""

    driver_name = "sunspec"

    def __init__(self, device_id: str, kind: str, capacity_w: int, settings: SunSpecMeterSettings):
        super().__init__(device_id, kind, capacity_w, settings)
        self.settings: SunSpecMeterSettings = settings
        self._client = None
        self._io = None  # asyncio.Lock, made on the drivers' loop
        self.model: int | None = None  # the meter model found by discovery
        self.model_address: int | None = None  # its header's address

    async def _connect(self) -> None:
        from pymodbus.client import AsyncModbusTcpClient

        self._io = asyncio.Lock()
        s = self.settings
        self._client = AsyncModbusTcpClient(s.host, port=s.port, timeout=s.timeout_seconds, retries=0,
                                            reconnect_delay=0, name=f"negawatt-{self.device_id[:10]}")
        if not await self._client.connect():
            raise ConnectionError(f"cannot connect to {s.host}:{s.port}")
        async with self._io:
            self.model, self.model_address = await self._discover()
        log.info("sunspec %s: model %d (%s) at register %d", self.device_id, self.model, METER_MODELS[self.model],
                 self.model_address)
        await self._poll()

    async def _disconnect(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _serve(self) -> None:
        while True:
            await asyncio.sleep(self.settings.poll_seconds)
            await self._poll()

    # -- registers -------------------------------------------------------------------------------

    async def _registers(self, address: int, count: int, *, quiet: bool = False) -> list[int] | None:
        client = self._client
        if client is None or not client.connected:
            raise ConnectionError("not connected")
        from pymodbus.exceptions import ModbusException

        try:
            response = await client.read_holding_registers(address, count=count, device_id=self.settings.device_id)
        except ModbusException as error:
            raise ConnectionError(str(error)) from None
        if response.isError():
            if quiet:
                return None
            raise DriverError(f"exception response reading {count} registers at {address}: {response}")
        return list(response.registers)

    async def _discover(self) -> tuple[int, int]:
        """(model, header address) of the meter model in the device's SunSpec map."""
        bases = (self.settings.base_address,) if self.settings.base_address is not None else BASE_ADDRESSES
        seen: list[str] = []
        base = None
        for candidate in bases:
            marker = await self._registers(candidate, 2, quiet=True)
            if marker is not None and tuple(marker) == SUNS_MARKER:
                base = candidate
                break
            seen.append(f"{candidate}: " + ("no such register" if marker is None
                                            else " ".join(f"0x{word:04X}" for word in marker)))
        if base is None:
            raise DriverError("no SunSpec marker 'SunS' (0x5375 0x6E53) at " + "; ".join(seen)
                              + ": not a SunSpec device, or set base_address")
        address, models = base + 2, []
        for _ in range(MAX_MODELS):
            header = await self._registers(address, 2, quiet=True)
            if header is None:
                break  # a map that ends without the end marker
            model, length = header
            if model == END_MODEL:
                break
            models.append(model)
            if model in METER_MODELS and self.settings.model in (None, model):
                if length < READ_LENGTH:
                    raise DriverError(f"meter model {model} at {address} is {length} registers long, "
                                      f"shorter than its {METER_MODEL_LENGTH}")
                return model, address
            address += 2 + length
            if address > 65_535 - 2:
                break
        wanted = f"meter model {self.settings.model}" if self.settings.model else "meter model 201-204"
        raise DriverError(f"the SunSpec map at {base} has no {wanted} "
                          f"(models found: {', '.join(map(str, models)) or 'none'})")

    async def _poll(self) -> None:
        async with self._io:
            block = await self._registers(self.model_address + 2, READ_LENGTH)
        power, raw_wh, modulus, wh_sf = decode_meter_block(block)
        signed = self.settings.power_sign * power
        energy = self.counter.update(raw_wh, modulus)
        self._store(max(0, signed), energy, model=self.model, export_w=max(0, -signed),
                    meter_energy_wh=raw_wh, energy_resets=self.counter.resets, energy_wraps=self.counter.wraps)
