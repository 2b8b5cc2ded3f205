"""Metering: every interval, each device's energy counter becomes a signed MeterBatch in the outbox.

The reading of interval [b - interval, b) is the difference of the device's energy counter (integer
Wh) at the two boundaries. The batch, its deliveries and the new boundary are committed together
(see node.outbox), so a crash at any point neither loses a committed reading nor meters an interval
twice. Intervals during which the node was down are not metered (a gap in time; sequence numbers
stay contiguous); nor is the interval after backfilled history, whose end counter is unknown. A counter that went backwards (a device that restarted) restarts metering at the
next boundary instead of producing a negative reading.

A real device (a driver with `live = True`) is read at the time of the tick, not at the boundary
itself. A device that does not answer (`DeviceUnavailable`) is skipped and retried on the next
tick: if its counter is read at most `max_read_delay_seconds` after the boundary, the interval is
metered (its end read a little late; the next interval starts from the same counter value, so
nothing is lost or counted twice); later than that, the boundary is skipped (its interval is not
metered, nor is metering started there from a counter read late) and metering restarts at the
next boundary (a gap in time, sequence numbers contiguous, as for a node that was
down).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterable, Protocol

from node.devices.interface import DeviceUnavailable
from node.outbox import Outbox
from protocol.meter import MeterBatch

log = logging.getLogger("negawatt.node.metering")
MAX_READINGS_PER_BATCH = 96


class EnergyMeter(Protocol):
    """What metering needs from a device driver."""

    max_read_delay_seconds: float  # how late a boundary may still be read (node.devices.interface)

    def advance(self, to_time: float) -> None: ...

    def energy_wh(self) -> int: ...


@dataclass
class MeteredDevice:
    """A device, its signing key and its on-chain address."""

    address: str
    key: bytes
    driver: EnergyMeter


class Meter:
    """Turns counters into signed batches, one interval at a time."""

    def __init__(self, outbox: Outbox, devices: Iterable[MeteredDevice], interval_seconds: int, chain_id: int,
                 registry: str, oracles: Callable[[], list[str]]):
        self.outbox = outbox
        self.devices = list(devices)
        self.interval = interval_seconds
        self.chain_id = chain_id
        self.registry = registry
        self.oracles = oracles
        self.unavailable: dict[str, str] = {}  # device address -> why it was not read

    def tick(self, now: float) -> int:
        """Meter every device whose interval ended by `now`; returns the number of batches written."""
        boundary = int(now) // self.interval * self.interval
        written = 0
        for device in self.devices:
            state = self.outbox.meter_state(device.address)
            if state is not None and state[0] >= boundary:
                continue  # this boundary is metered already
            if now - boundary > device.driver.max_read_delay_seconds:
                continue  # too late to read this boundary's counter: (re)start at the next boundary
            try:
                device.driver.advance(boundary)
                energy = device.driver.energy_wh()
            except DeviceUnavailable as error:
                if device.address not in self.unavailable:
                    log.warning("metering: %s does not answer (%s); retrying", device.address, error)
                self.unavailable[device.address] = str(error)
                continue
            if self.unavailable.pop(device.address, None) is not None:
                log.info("metering: %s answers again", device.address)
            if state is None or boundary - state[0] != self.interval or state[1] < 0 or energy < state[1]:
                if state is None or boundary > state[0]:
                    if state is not None:
                        log.info("metering of %s restarts at %d (was at %d, counter %d -> %d)", device.address,
                                 boundary, state[0], state[1], energy)
                    self.outbox.start_metering(device.address, boundary, energy)
                continue
            reading = energy - state[1]
            batch = MeterBatch(device.address, state[0], self.interval, (reading,),
                               self.outbox.next_sequence(device.address)).signed(device.key, self.chain_id,
                                                                                  self.registry)
            self.outbox.add_batch(batch, self.oracles(), boundary=boundary, energy_wh=energy)
            written += 1
        return written


def enqueue_history(outbox: Outbox, device: MeteredDevice, start: int, readings: list[int], interval_seconds: int,
                    chain_id: int, registry: str, oracles: list[str],
                    batch_readings: int = MAX_READINGS_PER_BATCH) -> int:
    """Sign and store past readings (a devnet's backfilled history) from `start`, in batches of
    `batch_readings` (96 by default; a network whose oracles take longer batches may send fewer).

    Idempotent: intervals before the device's current meter boundary are skipped, so running it
    again after a crash continues where it stopped. Returns the number of batches written.
    """
    state = outbox.meter_state(device.address)
    written = 0
    for offset in range(0, len(readings), batch_readings):
        chunk = readings[offset:offset + batch_readings]
        batch_start = start + offset * interval_seconds
        batch_end = batch_start + len(chunk) * interval_seconds
        if state is not None and batch_end <= state[0]:
            continue
        batch = MeterBatch(device.address, batch_start, interval_seconds, tuple(chunk),
                           outbox.next_sequence(device.address)).signed(device.key, chain_id, registry)
        # The counter at the end of history is unknown (-1): live metering starts afresh after it.
        outbox.add_batch(batch, oracles, boundary=batch_end, energy_wh=-1)
        written += 1
    return written
