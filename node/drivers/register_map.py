"""A configurable Modbus register map for a battery inverter, SunSpec-style, and its codec.

Each point is one value at a register `address` in the `holding` or `input` table, of a `type`:

    int16 / uint16      one register
    int32 / uint32      two registers (word order from the map: big = high word first)
    acc32               an unsigned 32-bit accumulator (SunSpec: lifetime energy; 0 = not accumulated)

and a SunSpec scale factor: value = raw x 10^sf, where sf is a fixed `scale` or is read from a
`scale_register` (an int16 "sunssf" register, as SunSpec devices publish it). SunSpec's "not
implemented" raw values (0x8000 for int16, 0xFFFF for uint16, 0x80000000 / 0xFFFFFFFF for the
32-bit types) read as None.

The map names the points the driver needs: `power` (W, the battery's grid import when positive;
`power_sign = -1` for devices that report charging as negative), `energy` (the import counter in
Wh), optional `soc` (percent), `charge_limit` (writable, W; the node's curtailment) and optional
`discharge_limit` (writable, W). This module is pure (no pymodbus): the driver and the simulated
peer both use it.
"""

from __future__ import annotations

import struct
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

RegisterType = Literal["int16", "uint16", "int32", "uint32", "acc32"]
WIDTH: dict[str, int] = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "acc32": 2}
NOT_IMPLEMENTED: dict[str, int] = {"int16": -0x8000, "uint16": 0xFFFF, "int32": -0x80000000,
                                   "uint32": 0xFFFFFFFF, "acc32": 0}
_FORMATS = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "acc32": ">I"}
_RANGES = {"int16": (-0x8000, 0x7FFF), "uint16": (0, 0xFFFF), "int32": (-0x80000000, 0x7FFFFFFF),
           "uint32": (0, 0xFFFFFFFF), "acc32": (0, 0xFFFFFFFF)}


class RegisterPoint(BaseModel):
    """One value in the device's registers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address: int = Field(ge=0, le=65_535)
    type: RegisterType
    table: Literal["holding", "input"] = "holding"
    scale: int = Field(0, ge=-10, le=10, description="fixed scale factor: value = raw x 10^scale")
    scale_register: int | None = Field(None, ge=0, le=65_535, description="address of an int16 sunssf register")

    @model_validator(mode="after")
    def _fits(self) -> RegisterPoint:
        if self.address + WIDTH[self.type] - 1 > 65_535:
            raise ValueError(f"a {self.type} at {self.address} runs past register 65535")
        if self.scale_register is not None and self.scale:
            raise ValueError("give either scale or scale_register, not both")
        return self

    @property
    def width(self) -> int:
        return WIDTH[self.type]

    @property
    def span(self) -> range:
        return range(self.address, self.address + self.width)


class RegisterMap(BaseModel):
    """Where a battery inverter keeps what the node reads and writes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    word_order: Literal["big", "little"] = "big"
    power_sign: Literal[1, -1] = Field(1, description="1: positive power = charging (grid import)")
    power: RegisterPoint
    energy: RegisterPoint
    soc: RegisterPoint | None = None
    charge_limit: RegisterPoint
    discharge_limit: RegisterPoint | None = None

    @field_validator("energy")
    @classmethod
    def _counter(cls, point: RegisterPoint) -> RegisterPoint:
        if point.type not in ("uint32", "acc32"):
            raise ValueError("the energy counter must be uint32 or acc32 (Wh)")
        return point

    @field_validator("charge_limit", "discharge_limit")
    @classmethod
    def _writable(cls, point: RegisterPoint | None) -> RegisterPoint | None:
        if point is not None and point.table != "holding":
            raise ValueError("a limit must be a holding register (input registers are read-only)")
        return point

    @model_validator(mode="after")
    def _no_overlap(self) -> RegisterMap:
        taken: dict[int, str] = {}
        for name, point in self.points().items():
            for address in point.span:
                if (point.table, address) in taken:
                    raise ValueError(f"{name} overlaps {taken[(point.table, address)]} at register {address}")
                taken[(point.table, address)] = name
        return self

    def points(self) -> dict[str, RegisterPoint]:
        """The configured points by name."""
        named = {"power": self.power, "energy": self.energy, "soc": self.soc, "charge_limit": self.charge_limit,
                 "discharge_limit": self.discharge_limit}
        return {name: point for name, point in named.items() if point is not None}

    def decode(self, point: RegisterPoint, registers: list[int]) -> int | None:
        """The raw integer in `registers` (None for SunSpec's "not implemented")."""
        words = list(registers[:point.width])
        if len(words) != point.width:
            raise ValueError(f"expected {point.width} registers, got {len(registers)}")
        if self.word_order == "little":
            words.reverse()
        raw = struct.unpack(_FORMATS[point.type], b"".join(struct.pack(">H", w) for w in words))[0]
        return None if raw == NOT_IMPLEMENTED[point.type] else raw

    def encode(self, point: RegisterPoint, raw: int) -> list[int]:
        """The registers holding the raw integer `raw`."""
        low, high = _RANGES[point.type]
        if not low <= raw <= high:
            raise ValueError(f"{raw} does not fit a {point.type}")
        packed = struct.pack(_FORMATS[point.type], raw)
        words = [struct.unpack(">H", packed[i:i + 2])[0] for i in range(0, len(packed), 2)]
        if self.word_order == "little":
            words.reverse()
        return words


def decode_sunssf(register: int) -> int | None:
    """A SunSpec scale-factor register (int16; 0x8000 = not implemented)."""
    value = register - 0x10000 if register >= 0x8000 else register
    if value == -0x8000:
        return None
    if not -10 <= value <= 10:
        raise ValueError(f"scale factor {value} out of SunSpec's range -10..10")
    return value


def default_register_map() -> RegisterMap:
    """The map of the simulated inverter (node.drivers.peers.modbus_inverter), SunSpec-style.

    40100 power int16 W (sf at 40101), 40102 energy acc32 Wh (sf 40104), 40110 SoC uint16 %
    (sf 40111), 40120 charge limit uint16 W, 40121 discharge limit uint16 W (sf 40122).
    """
    return RegisterMap.model_validate({
        "power": {"address": 40100, "type": "int16", "scale_register": 40101},
        "energy": {"address": 40102, "type": "acc32", "scale_register": 40104},
        "soc": {"address": 40110, "type": "uint16", "scale_register": 40111},
        "charge_limit": {"address": 40120, "type": "uint16", "scale_register": 40122},
        "discharge_limit": {"address": 40121, "type": "uint16", "scale_register": 40122},
    })
