"""Proof of flexibility: capability tests, their records, and the cap they put on offers.

A capability test is an ordinary FlexMarket request opened by the network's **test budget** account
(the deployment manifest's `parameters.capability_tester`; on a devnet an account the devnet funds),
of the market's minimum duration (FlexMarket `setDurationLimits`, 15 min on a devnet), in one zone,
at the test's price per kWh, its escrow being the protocol's budget for that test. No contract
changes: the request's `buyer` says it is a test, every role reads it from RequestOpened.

Who is tested (computed alone by every oracle and node, with the holdout's randomness):

    enrolled(zone)  = the zone's active site meters with at least one device at the site, registered
                      in a block at or before the test's gate block
    tested(site)    = uint256(keccak256(abi.encode(bytes32 gate block hash, uint256 request id,
                                                   address site, bytes32 CAPABILITY_TAG)))
                      % 10_000 < test_bps          (manifest `parameters.capability_test_bps`)
    control group   = the enrolled sites not tested (they were not dispatched: for free)

CAPABILITY_TAG = keccak256("negawatt.capability-test") separates this draw from the holdout's
(protocol.holdout hashes the same seed, request id and site without it), so the two draws are
independent even over the same seed, request and site; the gate block's proposer has the same
single publish-or-withhold choice as for the holdout.

The node, on a test request, dispatches every flexible device of a tested site to 0 W for the whole
window (the same setpoint code as a commitment of the device's whole capacity), signs no offer, and
is paid from the test's escrow. It never sits a test out for price.

Settlement of a test (oracle.capability_settlement; exact integers, floor division, Python's floor
for negative numbers), per enrolled site over the window's whole intervals (n of them, each of
`interval` s), with each meter's like-day baseline of the zone's program (no same-day adjustment):

    r(site)        = sum_t (baseline_wh[t] - actual_wh[t]) * 3600 // (n * interval)      (average W)
    control mean   = sum of r over control sites with a baseline // their number, when at least
                     MIN_CONTROL_SITES (5) of them have one; else 0 (no correction)
    testedW        = max(0, r(site) - control mean)     (the reduction beyond what the untested
                                                         sites' baselines also got wrong that hour)
    expectedW      = the average W of the site's devices' own like-day baselines in the window: what
                     its device meters say the dispatched devices would have drawn, so what a 0 W
                     setpoint should take off the site meter
    passed         = testedW >= MIN_PASS_W (100 W) and testedW * 10_000 >= PASS_SHARE_BPS * expectedW

The pass share is of what the site's own device meters claim (expectedW), not of its registered
capacity: a heat pump idling at 800 W in an evening hour cannot shed its 3 kW rating, and a test
must not fail a site for the hour it was drawn in. PASS_SHARE_BPS (5_000, half) is the settlement's
own rule for "clearly below" a commitment; it leaves room for the baseline's error on one short
window while a site that shed nothing (testedW near 0) fails. MIN_PASS_W keeps a site with nothing
flexible at that hour (expectedW near 0) from passing on noise. A tested site without a baseline (too
little history) or whose site meter read below its devices is recorded as failed, with the reason.

Pay: a passed site is paid testedW over the window (Wh) at the test's price, within the escrow (the
settlement's escrow scaling); a failed one gets nothing and no penalty (a test is not a commitment).

Capability record (in the finalized report's `verification.capability` of the test request, so every
oracle reads the same records from the same final documents, and the API serves them):

    {"site", "requestId", "testedW", "passed", "testedAt"}   testedAt = the test window's start (unix s)

The cap on offers (protocol.clearing.clear, `site_caps`), from a site's records:

    cap(site) = testedW of its latest passed record (latest by testedAt, then requestId)
              = PROBATION_W (1_500 W) when it never passed one

A site is capped at what it was last seen to shed, so a big offer from an unproven site cannot take
a buyer's target and then miss it. A later failed test does not lower the cap: the site may have
been drawn in an hour with nothing to shed (an unplugged EV), and the next test corrects it. 1.5 kW
is what a water heater, a heat pump or a slowed EV charger sheds in most homes (the devices the
node simulates shed 1-3 kW each), so a new site earns from its first request while it waits to be
drawn, and a request relying on unproven sites risks at most 1.5 kW per site. A network sets it in
its manifest (`parameters.capability_probation_w`); a network that names no test budget account
runs no tests and caps nothing (a cap no test can lift would be a fixed limit, not a probation).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from protocol.units import BPS, SECONDS_PER_HOUR

CAPABILITY_TAG = keccak(b"negawatt.capability-test")
DEFAULT_TEST_BPS = 2_000  # a fifth of the enrolled sites per test
MAX_TEST_BPS = BPS
PASS_SHARE_BPS = 5_000
MIN_PASS_W = 100
MIN_CONTROL_SITES = 5
PROBATION_W = 1_500

# reasons a tested site's record failed besides a too-small reduction
NO_BASELINE = "no_site_baseline"
BELOW_DEVICES = "site_meter_below_devices"
TOO_LITTLE = "reduction_below_pass_share"


def capability_draw(seed: bytes, request_id: int, site: str) -> int:
    """The site's uniform draw in 0..9_999 for a capability test (see the module docstring)."""
    if len(seed) != 32:
        raise ValueError("the test seed is a 32-byte block hash")
    digest = keccak(encode(["bytes32", "uint256", "address", "bytes32"],
                           [seed, request_id, to_checksum_address(site), CAPABILITY_TAG]))
    return int.from_bytes(digest, "big") % BPS


def is_tested(seed: bytes, request_id: int, site: str, test_bps: int) -> bool:
    """Whether `site` is tested by capability test `request_id` (dispatched, not in the control group)."""
    if not 0 <= test_bps <= MAX_TEST_BPS:
        raise ValueError(f"test_bps must be within 0..{MAX_TEST_BPS}, got {test_bps}")
    return capability_draw(seed, request_id, site) < test_bps


@dataclass(frozen=True)
class CapabilityRules:
    """Who opens capability tests and what share of the enrolled sites each one draws."""

    tester: str | None = None  # the test budget account; None: this network runs no tests
    test_bps: int = DEFAULT_TEST_BPS
    probation_w: int = PROBATION_W

    @property
    def runs(self) -> bool:
        """Whether this network runs capability tests (and so caps offers by them)."""
        return self.tester is not None

    def __post_init__(self) -> None:
        if not 0 <= self.test_bps <= MAX_TEST_BPS:
            raise ValueError(f"capability_test_bps must be within 0..{MAX_TEST_BPS}, got {self.test_bps}")
        if self.probation_w < 0:
            raise ValueError(f"capability_probation_w must be >= 0, got {self.probation_w}")
        if self.tester is not None:
            object.__setattr__(self, "tester", to_checksum_address(self.tester))

    def is_test(self, buyer: str) -> bool:
        """Whether a request opened by `buyer` is a capability test."""
        return self.tester is not None and bool(buyer) and buyer.lower() == self.tester.lower()

    @classmethod
    def from_parameters(cls, parameters: Mapping[str, Any]) -> "CapabilityRules":
        """The rules a deployment manifest's `parameters` set (none: no tests)."""
        tester = parameters.get("capability_tester")
        return cls(tester or None, int(parameters.get("capability_test_bps", DEFAULT_TEST_BPS)),
                   int(parameters.get("capability_probation_w", PROBATION_W)))


@dataclass(frozen=True)
class CapabilityRecord:
    """One tested site's result in one capability test."""

    site: str
    request_id: int
    tested_w: int
    passed: bool
    tested_at: int

    def as_json(self) -> dict[str, Any]:
        """The record as the report document and the API carry it."""
        return {"site": self.site, "requestId": self.request_id, "testedW": self.tested_w,
                "passed": self.passed, "testedAt": self.tested_at}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "CapabilityRecord":
        """A record from its JSON form; ValueError if malformed."""
        try:
            record = cls(to_checksum_address(data["site"]), int(data["requestId"]), int(data["testedW"]),
                         data["passed"], int(data["testedAt"]))
        except (KeyError, TypeError) as error:
            raise ValueError(f"malformed capability record {data!r}: {error}") from None
        if not isinstance(record.passed, bool) or record.tested_w < 0 or record.request_id < 0:
            raise ValueError(f"malformed capability record {data!r}")
        return record


def average_w(delta_wh: int, intervals: int, interval_seconds: int) -> int:
    """Energy over the window as average W (floor): delta_wh * 3600 // (intervals * interval_seconds)."""
    if intervals <= 0 or interval_seconds <= 0:
        raise ValueError("a test window has at least one whole interval")
    return delta_wh * SECONDS_PER_HOUR // (intervals * interval_seconds)


def control_mean_w(control_r: Iterable[int]) -> int:
    """The control sites' mean r (floor), or 0 with fewer than MIN_CONTROL_SITES of them."""
    values = list(control_r)
    return sum(values) // len(values) if len(values) >= MIN_CONTROL_SITES else 0


def passes(tested_w: int, expected_w: int) -> bool:
    """The pass rule of the module docstring."""
    return tested_w >= MIN_PASS_W and tested_w * BPS >= PASS_SHARE_BPS * max(0, expected_w)


def _order(record: CapabilityRecord) -> tuple[int, int]:
    return record.tested_at, record.request_id


def latest(records: Iterable[CapabilityRecord]) -> CapabilityRecord | None:
    """The latest record (by testedAt, then requestId), or None."""
    return max(records, key=_order, default=None)


def site_caps(records: Iterable[CapabilityRecord]) -> dict[str, int]:
    """Per site (lowercase address) the testedW of its latest passed record: the cap of a proven site.
    A site absent from the result never passed, and is capped at PROBATION_W (`cap_of`)."""
    best: dict[str, CapabilityRecord] = {}
    for record in records:
        if not record.passed:
            continue
        key = record.site.lower()
        if key not in best or _order(record) > _order(best[key]):
            best[key] = record
    return {site: record.tested_w for site, record in best.items()}


def cap_of(caps: Mapping[str, int], site: str, probation_w: int = PROBATION_W) -> int:
    """The most `site` may offer in one request, in W (module docstring)."""
    return caps.get(site.lower(), probation_w)
