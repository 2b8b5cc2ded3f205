"""A simulated DSMR 5 smart meter behind a P1-to-TCP adapter: a TCP server on loopback that sends
every connected client a telegram every `interval_seconds` (1 s, as DSMR 5 does).

A telegram is the DSMR 5.0.2 P1 text, lines ending in CR LF: the header `/XXX5<id>`, a blank line,
the COSEM objects (OBIS code, values in brackets, units after "*"), then "!" and the CRC16 of
everything from "/" to "!" inclusive (polynomial 0xA001 reflected, initial value 0, as 4
upper-case hex digits):

    1-3:0.2.8(50)                 DSMR version 5.0
    0-0:1.0.0(YYMMDDhhmmssX)      time stamp, X = S (summer time) or W (winter time)
    0-0:96.1.1(<hex id>)          equipment identifier
    1-0:1.8.1(000123.456*kWh)     energy delivered to the premises, tariff 1 (low)
    1-0:1.8.2(000234.567*kWh)     ... tariff 2 (normal)
    1-0:2.8.1 / 1-0:2.8.2         energy received from the premises (export), tariffs 1 and 2
    0-0:96.14.0(0002)             the tariff in force
    1-0:1.7.0(01.234*kW)          actual power delivered (+P)
    1-0:2.7.0(00.000*kW)          actual power received (-P)
    ... power failure counts, voltage sags/swells, instantaneous voltage, current, power per phase

The load is a household's, base_w + swing_w x (1 + sin(2 pi t / period_seconds)) / 2 W, rounded
to the telegram's resolution (1 W); the energy registers integrate that power over time into the
tariff in force (tariff 1 from 23:00 to 07:00 local time, else tariff 2), shown floored to 1 Wh.
`corrupt(n)` sends the next n telegrams with a wrong CRC; `freeze()` stops the clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time

log = logging.getLogger("negawatt.peers.p1")


def crc16(text: str) -> int:
    """CRC16 of a telegram's text from "/" to "!" inclusive (CRC-16/ARC: poly 0xA001 reflected, init 0)."""
    crc = 0
    for byte in text.encode("ascii"):
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def timestamp(t: float) -> str:
    """DSMR time stamp YYMMDDhhmmssX of unix time `t`, local time, X = S in summer time, W in winter."""
    local = time.localtime(t)
    return time.strftime("%y%m%d%H%M%S", local) + ("S" if local.tm_isdst > 0 else "W")


def telegram(t: float, tariff1_wh: int, tariff2_wh: int, power_w: int, *, tariff: int = 2,
             equipment_id: str = "4E57303030303031", header: str = "/NWT5\\2NEGAWATT-SIM", bad_crc: bool = False) -> str:
    """One DSMR 5 telegram, CRC included (a wrong CRC if `bad_crc`)."""
    third = power_w // 3
    phases = [third, third, power_w - 2 * third]
    lines = [header, "",
             "1-3:0.2.8(50)",
             f"0-0:1.0.0({timestamp(t)})",
             f"0-0:96.1.1({equipment_id})",
             f"1-0:1.8.1({tariff1_wh // 1000:06d}.{tariff1_wh % 1000:03d}*kWh)",
             f"1-0:1.8.2({tariff2_wh // 1000:06d}.{tariff2_wh % 1000:03d}*kWh)",
             "1-0:2.8.1(000000.000*kWh)",
             "1-0:2.8.2(000000.000*kWh)",
             f"0-0:96.14.0({tariff:04d})",
             f"1-0:1.7.0({power_w // 1000:02d}.{power_w % 1000:03d}*kW)",
             "1-0:2.7.0(00.000*kW)",
             "0-0:96.7.21(00004)",
             "0-0:96.7.9(00002)",
             "1-0:99.97.0(1)(0-0:96.7.19)(200101120000W)(0000000240*s)",
             "1-0:32.32.0(00002)", "1-0:52.32.0(00001)", "1-0:72.32.0(00000)",
             "1-0:32.36.0(00000)", "1-0:52.36.0(00000)", "1-0:72.36.0(00000)",
             "0-0:96.13.0()",
             "1-0:32.7.0(230.1*V)", "1-0:52.7.0(229.8*V)", "1-0:72.7.0(230.4*V)"]
    lines += [f"1-0:{31 + 20 * i}.7.0({round(w / 230):03d}*A)" for i, w in enumerate(phases)]
    lines += [f"1-0:{21 + 20 * i}.7.0({w // 1000:02d}.{w % 1000:03d}*kW)" for i, w in enumerate(phases)]
    lines += [f"1-0:{22 + 20 * i}.7.0(00.000*kW)" for i in range(3)]
    body = "\r\n".join(lines) + "\r\n!"
    crc = crc16(body) ^ (0x5A5A if bad_crc else 0)
    return f"{body}{crc:04X}\r\n"


class P1MeterPeer:
    """A DSMR 5 meter's P1 port on a TCP port (see the module docstring)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 2001, *, base_w: float = 300.0, swing_w: float = 2_700.0,
                 period_seconds: float = 60.0, interval_seconds: float = 1.0, tariff1_wh: float = 4_567_890.0,
                 tariff2_wh: float = 3_210_987.0):
        self.host, self.port = host, port
        self.base_w, self.swing_w, self.period_seconds = base_w, swing_w, period_seconds
        self.interval_seconds = interval_seconds
        self.energy_wh = {1: float(tariff1_wh), 2: float(tariff2_wh)}
        self._t = time.time()
        self._power = self._power_at(self._t)
        self.frozen = False
        self.bad_crc_left = 0
        self.sent = 0
        self.sent_bad = 0
        self.last: dict | None = None  # what the last good telegram said
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self._task: asyncio.Task | None = None

    # -- physics ---------------------------------------------------------------------------------

    def _power_at(self, t: float) -> int:
        return round(self.base_w + self.swing_w * (1 + math.sin(2 * math.pi * t / self.period_seconds)) / 2)

    @staticmethod
    def tariff(t: float) -> int:
        """1 (low) from 23:00 to 07:00 local time, else 2 (normal)."""
        hour = time.localtime(t).tm_hour
        return 1 if hour >= 23 or hour < 7 else 2

    def _advance(self) -> None:
        now = time.time()
        if not self.frozen:
            self.energy_wh[self.tariff(self._t)] += self._power * max(0.0, now - self._t) / 3600
            self._power = self._power_at(now)
        self._t = now

    def freeze(self) -> None:
        """Stop the clock: the next telegrams repeat the same readings until `unfreeze()`."""
        self._advance()
        self.frozen = True

    def unfreeze(self) -> None:
        """Let time run again (the frozen time is not counted)."""
        self._t = time.time()
        self.frozen = False

    def corrupt(self, count: int = 1) -> None:
        """Send the next `count` telegrams with a wrong CRC."""
        self.bad_crc_left += count

    def _telegram(self) -> str:
        self._advance()
        t1, t2 = (math.floor(self.energy_wh[i] + 1e-9) for i in (1, 2))
        bad = self.bad_crc_left > 0
        text = telegram(time.time(), t1, t2, self._power, tariff=self.tariff(self._t), bad_crc=bad)
        if bad:
            self.bad_crc_left -= 1
            self.sent_bad += 1
        else:
            self.last = {"tariff1_wh": t1, "tariff2_wh": t2, "power_w": self._power, "text": text}
        self.sent += 1
        return text

    def snapshot(self) -> dict:
        """The meter's state now and what its last good telegram said."""
        self._advance()
        return {"power_w": self._power, "energy_wh": self.energy_wh[1] + self.energy_wh[2], "frozen": self.frozen,
                "sent": self.sent, "sent_bad": self.sent_bad, "clients": len(self._clients),
                "last": dict(self.last) if self.last else None, "listening": self._server is not None}

    # -- the server ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen on host:port and start sending telegrams (on the running loop)."""
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self._task = asyncio.ensure_future(self._send_loop())
        log.info("P1 meter peer listening on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Close the listener and every connection."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for writer in list(self._clients):
            writer.close()
        self._clients.clear()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while await reader.read(1024):  # P1 is one-way: anything the client sends is ignored
                pass
        except (ConnectionError, OSError):
            pass
        finally:
            self._clients.discard(writer)
            writer.close()

    async def _send_loop(self) -> None:
        while True:
            if self._clients:
                data = self._telegram().encode("ascii")
                for writer in list(self._clients):
                    try:
                        writer.write(data)
                        await writer.drain()
                    except (ConnectionError, OSError):
                        self._clients.discard(writer)
            await asyncio.sleep(self.interval_seconds)
