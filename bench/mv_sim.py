"""The simulation harness of the ground-truth bench (`python -m bench mv`): sites, events, holdout, twins.

`simulate(sites, events)` runs N sites (bench.mv_sites: a household plus 1-3 controllable devices,
the node's own simulators) on one interval grid from a UTC midnight:

  history    `history_days` days nobody is dispatched;
  events     then one event a day on consecutive weekdays (weekend days are simulated normally), in
             the window [event_hour:00, + event_intervals x interval); `placebo_events` of them
             (default events // 4, chosen from the seed) dispatch nobody; the timeline runs to the
             end of the last event day.

Per event, as a node would (node.dispatch): an hour before the window (COMMIT_LEAD_SECONDS, before
the request's gate closure 15 minutes ahead of the window) every controllable device decides its commitment with `decide(Policy(), request, device, now, recent_w)`
(the device's forecast_flexibility_w; `recent_w` is node.own_baseline's own estimate, computed
from the harness's history of that device exactly as the node computes it from its outbox: the
highest 4 of its 5 most recent complete days in the window). A site is committed when >= 1 of its
devices is. A 32-byte event seed (from the bench seed; it stands in for the gate block's hash) and
`is_held_out(seed, request_id = index + 1, site address, holdout_bps)` split the committed sites
into treatment (dispatched) and control (held out). At the window start, on non-placebo events,
each treatment device gets `setpoint_w(power now, committed, recent_w)`; at its end, `restore()`.

Ground truth: at the window start of every event every site is forked (each simulator's own
snapshot resumed in a fresh copy, before any setpoint) and the fork runs through the window with
no dispatch; its site Wh per interval is the counterfactual (`twin_wh`) and `true_wh = sum(twin -
actual)` over the window, exactly 0 for control sites and on placebo events. The real timeline
continues with the dispatch (rebound included). The site meter reads the sum of its devices'
integer registers, so a site's Wh per interval is exactly the sum of its devices' Wh per interval.

Speed: all simulators step every 60 s; the household, which nothing acts on, is metered from its
own minute profile at once (`household_wh`, identical to stepping it). Sites are independent: they
are split across `workers` processes (spawn, so a script calling `simulate` with workers > 1 needs
the usual `if __name__ == "__main__":` guard) and the result depends only on the seed and the
arguments, never on `workers`.
"""

from __future__ import annotations

import calendar
import dataclasses
import datetime as dt
import logging
import multiprocessing
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from eth_utils import keccak

from bench.mv_sites import STEP_SECONDS, SiteSpec, draw_site
from node.devices.factory import build_device
from node.devices.household import Household
from node.devices.simulated import SimulatedDevice
from node.dispatch import NodeDevice, Policy, decide, setpoint_w
from node.own_baseline import recent_window_w
from protocol.holdout import MAX_HOLDOUT_BPS, is_held_out
from protocol.requests import FlexRequest

log = logging.getLogger("negawatt.bench.mv")

GRID_START = calendar.timegm((2026, 1, 5, 0, 0, 0))  # a Monday, UTC midnight
DAY = 86_400
COMMIT_LEAD_SECONDS = 3_600  # the request is seen, and commitments made, this long before the window
GATE_LEAD_SECONDS = 900  # the request's gate closure (as the devnet's market), after the commitments
ZONE = 1
NO_SETPOINT = -1  # in Event.device_setpoint_w: the device got no setpoint

Progress = Callable[[int, int], None]  # (sites done, sites in all)


@dataclass(frozen=True)
class EventPlan:
    """An event's place on the timeline, known before anything is simulated."""

    index: int  # 0-based; the request id is index + 1
    start: int
    end: int
    placebo: bool
    seed: bytes  # 32 bytes: the holdout draw's seed (a gate block hash in the protocol)

    @property
    def request_id(self) -> int:
        """The request id the holdout draw uses."""
        return self.index + 1


@dataclass(frozen=True, eq=False)
class Event:
    """One event's commitments, groups and ground truth, per site (arrays indexed by site).

    committed_w          [sites] int64: the site's total committed W (0: not committed)
    device_committed_w   per site, [devices] int64 (the household, first, never commits)
    device_recent_w      per site, [devices] int64: node.own_baseline's recent_w (-1: none known)
    device_start_w       per site, [devices] int64: each device's draw at the window start, before
                         any setpoint
    device_setpoint_w    per site, [devices] int64: the setpoint applied (NO_SETPOINT: none)
    device_applied_w     per site, [devices] int64: each device's draw right after its setpoint
                         (comfort overrides included; NO_SETPOINT where none was applied)
    treatment, control   [sites] bool: committed and dispatched / committed and held out (on a
                         placebo event `treatment` is who would have been dispatched; nobody is)
    twin_wh              [sites, event_intervals] int64: the counterfactual site Wh (no dispatch)
    true_wh              [sites] int64: sum over the window of twin - actual (the true reduction)
    """

    index: int
    start: int
    end: int
    placebo: bool
    seed: bytes
    committed_w: np.ndarray
    device_committed_w: list[np.ndarray]
    device_recent_w: list[np.ndarray]
    device_start_w: list[np.ndarray]
    device_setpoint_w: list[np.ndarray]
    device_applied_w: list[np.ndarray]
    treatment: np.ndarray
    control: np.ndarray
    twin_wh: np.ndarray
    true_wh: np.ndarray

    @property
    def request_id(self) -> int:
        """The request id of the holdout draw (index + 1)."""
        return self.index + 1

    @property
    def committed(self) -> np.ndarray:
        """[sites] bool: the sites that committed."""
        return self.committed_w > 0


@dataclass(frozen=True, eq=False)
class Portfolio:
    """The whole simulated portfolio: meters on one grid, the sites' devices, and the events.

    `site_wh[s, k]` is site s's Wh in interval k, which starts at `start + k * interval_seconds`;
    `device_wh[s]` is [devices, T] for site s (rows in the order of `device_kinds[s]`, the household
    first) and sums exactly to `site_wh[s]`."""

    interval_seconds: int
    start: int
    site_wh: np.ndarray
    device_wh: list[np.ndarray]
    device_kinds: list[tuple[str, ...]]
    device_configs: list[tuple[dict, ...]]
    sites: list[str]
    events: list[Event]
    event_days: list[dt.date]
    history_days: int
    holdout_bps: int
    seed: int
    seconds: float = field(default=0.0)  # wall time of the simulation

    @property
    def intervals(self) -> int:
        """T, the number of intervals on the grid."""
        return int(self.site_wh.shape[1])

    @property
    def end(self) -> int:
        """The end of the grid (unix seconds)."""
        return self.start + self.intervals * self.interval_seconds

    def times(self) -> np.ndarray:
        """[T] int64: each interval's start time."""
        return self.start + self.interval_seconds * np.arange(self.intervals, dtype=np.int64)

    def index(self, t: int) -> int:
        """The grid index of the interval starting at `t` (an interval boundary inside the grid)."""
        k, rest = divmod(int(t) - self.start, self.interval_seconds)
        if rest or not 0 <= k <= self.intervals:
            raise ValueError(f"{t} is not an interval boundary of the grid [{self.start}, {self.end})")
        return k

    def window(self, event: Event) -> slice:
        """The grid slice of an event's window."""
        return slice(self.index(event.start), self.index(event.end))

    def actual_wh(self, event: Event) -> np.ndarray:
        """[sites, event_intervals] int64: the sites' metered Wh in the event's window."""
        return self.site_wh[:, self.window(event)]


# -- the timeline ---------------------------------------------------------------------------------

def event_seed(seed: int, index: int) -> bytes:
    """The 32-byte holdout seed of event `index` of the bench run with seed `seed`."""
    return keccak(text=f"negawatt:bench-mv:event:{seed}:{index}")


def plan_events(events: int, *, seed: int = 0, placebo_events: int | None = None, history_days: int = 28,
                event_hour: int = 17, event_intervals: int = 4, interval_seconds: int = 900,
                start: int = GRID_START) -> tuple[list[EventPlan], list[dt.date], int]:
    """(the events, their days, the end of the timeline): one event a weekday after `history_days`
    days of history, weekends skipped; the placebo events are a seeded random choice."""
    placebo_count = events // 4 if placebo_events is None else placebo_events
    if not 0 <= placebo_count <= events:
        raise ValueError(f"placebo_events must be within 0..events ({events}), got {placebo_count}")
    chosen = set(random.Random(f"negawatt:bench-mv:placebo:{seed}").sample(range(events), placebo_count))
    first = dt.datetime.fromtimestamp(start, dt.timezone.utc).date()
    plans, days = [], []
    day = history_days
    while len(plans) < events:
        date = first + dt.timedelta(days=day)
        if date.weekday() < 5:
            window_start = start + day * DAY + event_hour * 3_600
            index = len(plans)
            plans.append(EventPlan(index, window_start, window_start + event_intervals * interval_seconds,
                                   index in chosen, event_seed(seed, index)))
            days.append(date)
        day += 1
    return plans, days, start + day * DAY


# -- one site -------------------------------------------------------------------------------------

class _History:
    """A device's recorded Wh on the grid, read as node.own_baseline reads a node's outbox."""

    def __init__(self, wh: np.ndarray, start: int, interval: int, recorded: int):
        self.wh, self.start, self.interval, self.recorded = wh, start, interval, recorded

    def readings(self, device: str, start: int, end: int) -> dict[int, tuple[int, int]]:
        """{interval start: (Wh, interval seconds)} of the recorded intervals in [start, end)."""
        first = max(0, -(-(start - self.start) // self.interval))
        last = min(self.recorded, (end - self.start + self.interval - 1) // self.interval)
        return {self.start + k * self.interval: (int(self.wh[k]), self.interval) for k in range(first, last)}


@dataclass
class _SiteEvent:
    committed_w: list[int]
    recent_w: list[int]
    start_w: list[int]
    setpoint_w: list[int]
    applied_w: list[int]
    held_out: bool
    twin_wh: list[int]


@dataclass
class _SiteRun:
    index: int
    device_wh: np.ndarray
    events: list[_SiteEvent]


class _Meter:
    """The site's devices on the grid, recording each device's Wh per interval as it goes."""

    def __init__(self, devices: list[SimulatedDevice], start: int, interval: int, intervals: int,
                 metered: dict[int, np.ndarray]):
        self.devices, self.start, self.interval = devices, start, interval
        self.wh = np.zeros((len(devices), intervals), dtype=np.int64)
        for d, row in metered.items():  # devices whose whole row is known already (the household)
            self.wh[d] = row
        self.stepped = [d for d in range(len(devices)) if d not in metered]
        self.registers = [device.energy_wh() for device in devices]
        self.done = 0  # intervals recorded

    def run_to(self, k: int) -> None:
        """Advance every stepped device to the end of interval k - 1, recording intervals done..k-1."""
        for d in self.stepped:
            device = self.devices[d]
            previous, row = self.registers[d], self.wh[d]
            for j in range(self.done, k):
                device.advance(self.start + (j + 1) * self.interval)
                register = device.energy_wh()
                row[j] = register - previous
                previous = register
            self.registers[d] = previous
        self.done = max(self.done, k)


def fork(device: SimulatedDevice) -> SimulatedDevice:
    """A twin of `device` in the same state, through the simulator's own snapshot/resume into a
    fresh simulator of the same parameters and seed (so the twin carries no memo of past days and
    copies cheaply); its trajectory is the device's own, to the last joule."""
    twin = device.fresh(device.now)
    if not twin.resume(device.snapshot()):
        raise AssertionError(f"{device.device_id}: a fresh copy refused the device's own snapshot")
    return twin


def household_wh(household: Household, start: int, intervals: int, interval: int) -> np.ndarray:
    """[intervals] int64: the Wh per interval a household simulator's register meters from `start`
    (a local midnight), computed from its own minute profile (`profile_of_day`) at once rather than
    minute by minute: its power is constant over each minute and nothing acts on it, so the joules
    are the same integer sums and the register the same floor(J / 3600) as stepping it (a test
    checks it against the simulator's backfill)."""
    if household.offset_s or start % DAY or (intervals * interval) % DAY or interval % 60:
        raise ValueError("household_wh needs whole local days of whole-minute intervals")
    first = start // DAY
    watts = np.concatenate([np.asarray(household.profile_of_day(first + k), dtype=np.int64)
                            for k in range(intervals * interval // DAY)])
    registers = np.cumsum(watts * 60)[interval // 60 - 1::interval // 60] // 3_600
    return np.diff(registers, prepend=0)


def _window_wh(devices: list[SimulatedDevice], start: int, interval: int, intervals: int) -> list[int]:
    """The site Wh per interval of `devices` (already at `start`) over `intervals` intervals."""
    totals = [0] * intervals
    for device in devices:
        previous = device.energy_wh()
        for j in range(intervals):
            device.advance(start + (j + 1) * interval)
            register = device.energy_wh()
            totals[j] += register - previous
            previous = register
    return totals


def simulate_site(spec: SiteSpec, plans: Sequence[EventPlan], *, start: int, end: int, interval_seconds: int,
                  holdout_bps: int) -> _SiteRun:
    """Run one site through the whole timeline: its meters, its commitments, its twins (see the
    module docstring). Deterministic for the site's spec and the plans."""
    devices = [build_device(config, start_time=start) for config in spec.devices]
    intervals = (end - start) // interval_seconds
    metered = {d: household_wh(device, start, intervals, interval_seconds)
               for d, device in enumerate(devices) if isinstance(device, Household)}
    meter = _Meter(devices, start, interval_seconds, intervals, metered)
    policy = Policy()
    records = []
    for plan in plans:
        window = (plan.end - plan.start) // interval_seconds
        first = (plan.start - start) // interval_seconds
        commit_at = plan.start - COMMIT_LEAD_SECONDS
        meter.run_to((commit_at - start) // interval_seconds)
        for d in meter.stepped:
            devices[d].advance(commit_at)
        request = FlexRequest(request_id=plan.request_id, zone=ZONE, start=plan.start, end=plan.end,
                              target_w=10**9, price_per_kwh=1, payment_token="0x" + "00" * 20,
                              holdout_bps=holdout_bps, gate_closure=plan.start - GATE_LEAD_SECONDS)
        committed, recent = [0] * len(devices), [-1] * len(devices)
        for d, device in enumerate(devices):
            if device.capacity_w <= 0:
                continue  # the household: metered, never committed
            history = _History(meter.wh[d], start, interval_seconds, meter.done)
            known = recent_window_w(history, device.device_id, plan.start, plan.end)  # type: ignore[arg-type]
            node_device = NodeDevice(address=device.device_id, key=b"", driver=fork(device), zone=ZONE,
                                     capacity_w=device.capacity_w)
            committed[d], _reason = decide(policy, request, node_device, commit_at, known)
            recent[d] = -1 if known is None else known
        held_out = any(committed) and is_held_out(plan.seed, plan.request_id, spec.address, holdout_bps)
        meter.run_to(first)
        start_w = [device.power_at(plan.start) if d in metered else device.power_w()
                   for d, device in enumerate(devices)]
        twin = [fork(device) for d, device in enumerate(devices) if d not in metered]
        setpoints, applied = [NO_SETPOINT] * len(devices), [NO_SETPOINT] * len(devices)
        if any(committed) and not held_out and not plan.placebo:
            for d, device in enumerate(devices):
                if committed[d]:
                    recent_w = None if recent[d] < 0 else recent[d]
                    setpoints[d] = setpoint_w(device.power_w(), committed[d], recent_w)
                    applied[d] = device.apply_setpoint(setpoints[d], f"request {plan.request_id}").power_w
        twin_wh = _window_wh(twin, plan.start, interval_seconds, window)
        for row in metered.values():  # nothing acts on the household: its twin is its own row
            twin_wh = [a + int(b) for a, b in zip(twin_wh, row[first:first + window])]
        meter.run_to(first + window)
        for d, device in enumerate(devices):
            if setpoints[d] != NO_SETPOINT:
                device.restore()
        records.append(_SiteEvent(committed, recent, start_w, setpoints, applied, held_out, twin_wh))
    meter.run_to(intervals)
    return _SiteRun(spec.index, meter.wh, records)


def _simulate_sites(job: tuple) -> list[_SiteRun]:
    """A worker's share: simulate_site for each spec of the job (picklable, for the process pool)."""
    specs, plans, start, end, interval_seconds, holdout_bps = job
    return [simulate_site(spec, plans, start=start, end=end, interval_seconds=interval_seconds,
                          holdout_bps=holdout_bps) for spec in specs]


# -- the portfolio --------------------------------------------------------------------------------

def _check(sites: int, events: int, holdout_bps: int, history_days: int, event_hour: int,
           event_intervals: int, interval_seconds: int, workers: int) -> None:
    def whole(name: str, value: object, low: int, high: int | None = None) -> None:
        wrong = isinstance(value, bool) or not isinstance(value, int)
        if wrong or value < low or (high is not None and value > high):
            bound = f"an integer >= {low}" if high is None else f"an integer within {low}..{high}"
            raise ValueError(f"{name} must be {bound}, got {value!r}")

    whole("sites", sites, 1)
    whole("events", events, 1)
    whole("holdout_bps", holdout_bps, 0, MAX_HOLDOUT_BPS)
    whole("history_days", history_days, 1)
    whole("event_hour", event_hour, 0, 23)
    whole("event_intervals", event_intervals, 1)
    whole("interval_seconds", interval_seconds, STEP_SECONDS)
    whole("workers", workers, 1)
    if interval_seconds % STEP_SECONDS or DAY % interval_seconds:
        raise ValueError(f"interval_seconds must be a multiple of {STEP_SECONDS} that divides a day, "
                         f"got {interval_seconds}")
    if COMMIT_LEAD_SECONDS % interval_seconds:
        raise ValueError(f"interval_seconds must divide the commitment lead ({COMMIT_LEAD_SECONDS} s), "
                         f"got {interval_seconds}")
    if event_hour * 3_600 + event_intervals * interval_seconds > DAY:
        raise ValueError(f"the event window ({event_intervals} x {interval_seconds} s from {event_hour}:00) "
                         "must end by midnight")


def simulate(sites: int, events: int, *, seed: int = 0, holdout_bps: int = 1500,
             placebo_events: int | None = None, history_days: int = 28, event_hour: int = 17,
             event_intervals: int = 4, interval_seconds: int = 900, workers: int = 2,
             progress: Progress | None = None, without: tuple[str, ...] = ()) -> Portfolio:
    """Simulate `sites` sites through `history_days` of history and `events` events (see the module
    docstring) and return the portfolio with its ground truth. `progress(done, total)` is called
    with the number of sites finished. Deterministic for the arguments; `workers` only sets how
    many processes share the sites."""
    _check(sites, events, holdout_bps, history_days, event_hour, event_intervals, interval_seconds, workers)
    began = time.monotonic()
    plans, days, end = plan_events(events, seed=seed, placebo_events=placebo_events,
                                   history_days=history_days, event_hour=event_hour,
                                   event_intervals=event_intervals, interval_seconds=interval_seconds)
    specs = [draw_site(seed, index, without) for index in range(sites)]
    size = max(1, min(10, sites // (workers * 8)))
    jobs = [(specs[k:k + size], plans, GRID_START, end, interval_seconds, holdout_bps)
            for k in range(0, sites, size)]
    runs: list[_SiteRun | None] = [None] * sites
    done = 0
    if progress is not None:
        progress(0, sites)

    def collect(batch: list[_SiteRun]) -> None:
        nonlocal done
        for run in batch:
            runs[run.index] = run
        done += len(batch)
        if progress is not None:
            progress(done, sites)

    if workers == 1 or len(jobs) == 1:
        for job in jobs:
            collect(_simulate_sites(job))
    else:
        with multiprocessing.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
            for batch in pool.imap_unordered(_simulate_sites, jobs):
                collect(batch)
    portfolio = _assemble(runs, specs, plans, days, interval_seconds, history_days, holdout_bps, seed)
    seconds = time.monotonic() - began
    log.info("simulated %d sites x %d intervals, %d events, in %.1f s", sites, portfolio.intervals, events,
             seconds)
    return dataclasses.replace(portfolio, seconds=seconds)


def _assemble(runs: list, specs: list[SiteSpec], plans: list[EventPlan], days: list[dt.date],
              interval_seconds: int, history_days: int, holdout_bps: int, seed: int) -> Portfolio:
    device_wh = [run.device_wh for run in runs]
    site_wh = np.stack([wh.sum(axis=0) for wh in device_wh])
    built = []
    for e, plan in enumerate(plans):
        rows = [run.events[e] for run in runs]
        committed_w = np.array([sum(row.committed_w) for row in rows], dtype=np.int64)
        held_out = np.array([row.held_out for row in rows], dtype=bool)
        twin_wh = np.array([row.twin_wh for row in rows], dtype=np.int64)
        first = (plan.start - GRID_START) // interval_seconds
        actual = site_wh[:, first:first + twin_wh.shape[1]]
        built.append(Event(
            index=plan.index, start=plan.start, end=plan.end, placebo=plan.placebo, seed=plan.seed,
            committed_w=committed_w,
            device_committed_w=[np.array(row.committed_w, dtype=np.int64) for row in rows],
            device_recent_w=[np.array(row.recent_w, dtype=np.int64) for row in rows],
            device_start_w=[np.array(row.start_w, dtype=np.int64) for row in rows],
            device_setpoint_w=[np.array(row.setpoint_w, dtype=np.int64) for row in rows],
            device_applied_w=[np.array(row.applied_w, dtype=np.int64) for row in rows],
            treatment=(committed_w > 0) & ~held_out, control=(committed_w > 0) & held_out,
            twin_wh=twin_wh, true_wh=(twin_wh - actual).sum(axis=1)))
    return Portfolio(interval_seconds=interval_seconds, start=GRID_START, site_wh=site_wh,
                     device_wh=device_wh, device_kinds=[spec.kinds for spec in specs],
                     device_configs=[spec.devices for spec in specs],
                     sites=[spec.address for spec in specs], events=built, event_days=days,
                     history_days=history_days, holdout_bps=holdout_bps, seed=seed)
