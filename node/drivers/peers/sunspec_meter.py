"""A simulated SunSpec site meter behind a real pymodbus TCP server.

The map is what a SunSpec meter publishes: the "SunS" marker at `base_address`, the common model 1
(manufacturer, model, serial as strings), one meter model (201, 202, 203 or 204, 105 registers:
current, voltages, frequency, W with its phases, ..., the energy accumulators, each with its
scale factor) and the end marker. Every request first advances the physics to the wall clock
and rewrites the registers from it:

    power    a household's grid import, base_w + swing_w x (1 + sin(2 pi t / period_seconds)) / 2,
             rounded to the resolution of W_SF (the W register holds exactly that)
    energy   the integral of that power over time (each register value held until the next
             request), offset by energy_offset_wh; TotWhImp = floor(energy / 10^TotWh_SF)

`freeze()` stops the clock (registers keep their values: a test can compare them with the
driver's reading), `set_meter_wh()` overwrites the energy counter (a meter reset, or a value close
to the register's wrap), and `marker` replaces "SunS" (a device that is not SunSpec).
"""

from __future__ import annotations

import logging
import math
import time

from node.drivers.sunspec_meter import END_MODEL, METER_MODEL_LENGTH, SUNS_MARKER, TOT_WH_IMP, TOT_WH_SF, W, W_SF

log = logging.getLogger("negawatt.peers.sunspec")
COMMON_LENGTH = 66
PHASES = {201: 1, 202: 2, 203: 3, 204: 3}


def _string(text: str, registers: int) -> list[int]:
    raw = text.encode("ascii")[:registers * 2].ljust(registers * 2, b"\0")
    return [(raw[i] << 8) | raw[i + 1] for i in range(0, len(raw), 2)]


def _int16(value: int) -> int:
    if not -0x7FFF <= value <= 0x7FFF:
        raise ValueError(f"{value} does not fit an int16 register (choose another scale factor)")
    return value & 0xFFFF


class SunSpecMeterPeer:
    """A pymodbus server whose registers are a SunSpec meter's (see the module docstring)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 5021, *, model: int = 203, w_sf: int = 0,
                 wh_sf: int = 0, base_address: int = 40000, device_id: int = 1, base_w: int = 400,
                 swing_w: int = 2_600, period_seconds: float = 60.0, energy_offset_wh: float = 3_456_789,
                 marker: tuple[int, int] = SUNS_MARKER):
        if not -10 <= w_sf <= 10 or not -10 <= wh_sf <= 10:
            raise ValueError("scale factors are -10..10")
        self.host, self.port, self.device_id, self.model = host, port, device_id, model
        self.w_sf, self.wh_sf, self.base_address, self.marker = w_sf, wh_sf, base_address, marker
        self.base_w, self.swing_w, self.period_seconds = base_w, swing_w, period_seconds
        self.energy_wh = float(energy_offset_wh)  # the meter's import counter, exact (float Wh)
        self._t = time.time()
        self._raw_w = self._power_raw(self._t)
        self.frozen = False
        self.requests = 0
        self._server = None
        self._registers: list[int] = self._layout()

    # -- physics ---------------------------------------------------------------------------------

    def _power_raw(self, t: float) -> int:
        watts = self.base_w + self.swing_w * (1 + math.sin(2 * math.pi * t / self.period_seconds)) / 2
        return round(watts / 10.0 ** self.w_sf)

    def power_w(self) -> float:
        """What the W register says now, in W."""
        return self._raw_w * 10.0 ** self.w_sf

    def _advance(self) -> None:
        now = time.time()
        if self.frozen:
            self._t = now
            return
        self.energy_wh += self.power_w() * max(0.0, now - self._t) / 3600  # held power x time
        self._t = now
        self._raw_w = self._power_raw(now)

    def freeze(self) -> None:
        """Stop the clock: power and energy keep their values until `unfreeze()`."""
        self._advance()
        self.frozen = True

    def unfreeze(self) -> None:
        """Let time run again (from now: the frozen time is not counted)."""
        self._t = time.time()
        self.frozen = False

    def set_meter_wh(self, wh: int) -> None:
        """Overwrite the import counter (a meter reset, or a value near the register's wrap)."""
        self._advance()
        self.energy_wh = float(wh)

    def tot_wh_raw(self) -> int:
        """The TotWhImp register's value (floor(energy / 10^TotWh_SF), modulo 2^32 as an acc32)."""
        return math.floor(self.energy_wh / 10.0 ** self.wh_sf + 1e-9) % 2 ** 32

    # -- registers -------------------------------------------------------------------------------

    def _layout(self) -> list[int]:
        common = [1, COMMON_LENGTH] + _string("negawatt", 16) + _string("sim-site-meter", 16) + _string("", 8) \
            + _string("1.0", 8) + _string("NW-0001", 16) + [self.device_id, 0x8000]
        meter = [self.model, METER_MODEL_LENGTH] + [0] * METER_MODEL_LENGTH
        return list(self.marker) + common + meter + [END_MODEL, 0]

    def _refresh(self) -> None:
        self._advance()
        block = 2 + 2 + COMMON_LENGTH + 2  # the meter model's first point
        r = self._registers
        phases = PHASES.get(self.model, 3)
        per_phase = round(self._raw_w / phases)
        values = {0: round(self.power_w() / 230 * 10), 4: _int16(-1),  # A (sf -1)
                  5: 2300, 13: _int16(-1), 14: 5000, 15: _int16(-2),  # V (sf -1), Hz (sf -2)
                  W: _int16(self._raw_w), W_SF: _int16(self.w_sf), TOT_WH_SF: _int16(self.wh_sf)}
        for phase in range(3):
            values[1 + phase] = values[0] // phases if phase < phases else 0
            values[6 + phase] = 2300 if phase < phases else 0
            values[17 + phase] = _int16(per_phase if phase < phases else 0)
        raw_wh = self.tot_wh_raw()
        values[TOT_WH_IMP], values[TOT_WH_IMP + 1] = raw_wh >> 16, raw_wh & 0xFFFF
        for offset, value in values.items():
            r[block + offset] = value & 0xFFFF

    def registers(self) -> dict[str, int]:
        """The raw values of the points the driver reads, as the registers hold them now."""
        block = 2 + 2 + COMMON_LENGTH + 2
        r = self._registers
        signed = lambda v: v - 0x10000 if v >= 0x8000 else v  # noqa: E731
        return {"W": signed(r[block + W]), "W_SF": signed(r[block + W_SF]),
                "TotWhImp": (r[block + TOT_WH_IMP] << 16) | r[block + TOT_WH_IMP + 1],
                "TotWh_SF": signed(r[block + TOT_WH_SF])}

    async def start(self) -> None:
        """Listen on host:port (must run on an asyncio loop that keeps running)."""
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import DataType, SimData, SimDevice

        self._refresh()
        block = SimData(self.base_address, count=len(self._registers), values=0, datatype=DataType.REGISTERS)
        device = SimDevice(self.device_id, simdata=[block], action=self._action)
        self._server = ModbusTcpServer(device, address=(self.host, self.port))
        await self._server.serve_forever(background=True)
        log.info("sunspec meter peer (model %d) listening on %s:%d", self.model, self.host, self.port)

    async def stop(self) -> None:
        """Close the listener and every connection."""
        if self._server is not None:
            await self._server.shutdown()
            self._server = None

    async def _action(self, function_code: int, start_address: int, address: int, count: int,
                      registers: list[int], set_values) -> None:
        self.requests += 1
        self._refresh()
        registers[:len(self._registers)] = self._registers  # the server's block mirrors the map

    def snapshot(self) -> dict:
        """The meter's state now (call on the peer's loop, or when it is idle)."""
        self._refresh()
        return {"model": self.model, "power_w": self.power_w(), "energy_wh": self.energy_wh,
                "registers": self.registers(), "frozen": self.frozen, "listening": self._server is not None}
