"""A DSMR smart meter's P1 port as a site meter, read from a P1-to-network adapter over TCP and
parsed with dsmr-parser.

A P1 adapter (ser2net on a USB P1 cable, or a P1 dongle) forwards the meter's telegrams on a TCP
port: plain ASCII, from "/" (the header line) to "!" followed by the CRC16 in 4 hex digits; a
DSMR 5 meter sends one every second (DSMR 4: every 10 s). The driver connects, splits the byte
stream into telegrams (dsmr_parser.clients.telegram_buffer.TelegramBuffer) and parses each with
dsmr_parser.parsers.TelegramParser for the configured version, which checks the CRC. A telegram
with a wrong CRC, or without the readings below, is rejected (logged and counted in `rejected`)
and the next one is read. It reads:

    1-0:1.8.1 + 1-0:1.8.2   electricity delivered to the premises, tariff 1 + tariff 2, kWh with
                            3 decimals -> import energy, integer Wh (exact)
    1-0:1.7.0               actual electricity power delivered (+P), kW -> power W
    1-0:2.7.0               actual electricity power received (-P, export), kept as `export_w`

The energy goes through node.drivers.site_meter.MonotonicCounter (a replaced meter continues from
the last value). No data for `stale_seconds` drops the connection, which is retried with back-off.
"""

from __future__ import annotations

import asyncio
import logging
from decimal import Decimal

from node.drivers.live import DriverError
from node.drivers.settings import DsmrP1Settings
from node.drivers.site_meter import SiteMeterDevice

log = logging.getLogger("negawatt.node.drivers.p1")


def readings(telegram) -> tuple[int, int, int]:
    """(power W, import energy Wh, export power W) of a parsed telegram; DriverError naming a
    reading the telegram lacks."""
    values: dict[str, Decimal] = {}
    for name in ("ELECTRICITY_USED_TARIFF_1", "ELECTRICITY_USED_TARIFF_2", "CURRENT_ELECTRICITY_USAGE"):
        item = getattr(telegram, name, None)
        value = getattr(item, "value", None)
        if not isinstance(value, Decimal) or not value.is_finite() or value < 0:
            raise DriverError(f"the telegram has no valid {name}")
        values[name] = value
    energy_kwh = values["ELECTRICITY_USED_TARIFF_1"] + values["ELECTRICITY_USED_TARIFF_2"]
    energy_wh = int((energy_kwh * 1000).to_integral_value(rounding="ROUND_FLOOR"))
    power_w = int((values["CURRENT_ELECTRICITY_USAGE"] * 1000).to_integral_value(rounding="ROUND_HALF_EVEN"))
    delivery = getattr(getattr(telegram, "CURRENT_ELECTRICITY_DELIVERY", None), "value", None)
    export_w = int((delivery * 1000).to_integral_value()) if isinstance(delivery, Decimal) else 0
    return power_w, energy_wh, export_w


class DsmrP1Meter(SiteMeterDevice):
    """A DSMR meter's P1 telegrams, from a TCP P1 adapter."""

    driver_name = "p1"

    def __init__(self, device_id: str, kind: str, capacity_w: int, settings: DsmrP1Settings):
        super().__init__(device_id, kind, capacity_w, settings)
        self.settings: DsmrP1Settings = settings
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._buffer = None
        self._parser = None
        self.telegrams = 0  # accepted
        self.rejected = 0
        self.last_rejection = ""

    async def _connect(self) -> None:
        from dsmr_parser import telegram_specifications
        from dsmr_parser.clients.telegram_buffer import TelegramBuffer
        from dsmr_parser.parsers import TelegramParser

        s = self.settings
        spec = telegram_specifications.V5 if s.dsmr_version == "5" else telegram_specifications.V4
        self._parser = TelegramParser(spec, apply_checksum_validation=True)
        self._buffer = TelegramBuffer()
        try:
            self._reader, self._writer = await asyncio.wait_for(asyncio.open_connection(s.host, s.port),
                                                                s.timeout_seconds)
        except TimeoutError:
            raise ConnectionError(f"cannot connect to the P1 adapter at {s.host}:{s.port} "
                                  f"within {s.timeout_seconds:g} s") from None
        # Connected once the first good telegram arrived (a port that sends none fails here).
        deadline = asyncio.get_running_loop().time() + s.stale_seconds
        while not await self._read():
            if asyncio.get_running_loop().time() > deadline:
                raise DriverError(f"no valid telegram from {s.host}:{s.port} within {s.stale_seconds:g} s"
                                  + (f" (last rejected: {self.last_rejection})" if self.last_rejection else ""))

    async def _serve(self) -> None:
        while True:
            await self._read()

    async def _disconnect(self) -> None:
        writer, self._reader, self._writer = self._writer, None, None
        if writer is not None:
            writer.close()
            try:
                await asyncio.wait_for(writer.wait_closed(), 2)
            except Exception:
                pass

    async def _read(self) -> int:
        """Read what the adapter sent; the number of good telegrams it completed."""
        s = self.settings
        try:
            data = await asyncio.wait_for(self._reader.read(4096), s.stale_seconds)
        except TimeoutError:
            raise ConnectionError(f"no data from the P1 adapter for {s.stale_seconds:g} s") from None
        if not data:
            raise ConnectionError("the P1 adapter closed the connection")
        self._buffer.append(data.decode("ascii", errors="replace"))
        good = 0
        for text in self._buffer.get_all():
            good += self._handle(text)
        return good

    def _handle(self, text: str) -> int:
        from dsmr_parser.exceptions import InvalidChecksumError, ParseError

        try:
            telegram = self._parser.parse(text, throw_ex=True)
            power_w, raw_wh, export_w = readings(telegram)
        except (InvalidChecksumError, ParseError, DriverError, ValueError) as error:
            self.rejected += 1
            self.last_rejection = str(error)
            log.warning("p1 %s: telegram rejected: %s", self.device_id, error)
            return 0
        self.telegrams += 1
        header = getattr(getattr(telegram, "P1_MESSAGE_HEADER", None), "value", None)
        self._store(power_w, self.counter.update(raw_wh), export_w=export_w, meter_energy_wh=raw_wh,
                    energy_resets=self.counter.resets, dsmr_version=header, telegrams=self.telegrams,
                    rejected=self.rejected)
        return 1

    def state(self) -> dict:
        """The live state, with the count of rejected telegrams and the last reason."""
        return {**super().state(), "rejected": self.rejected, "last_rejection": self.last_rejection}
