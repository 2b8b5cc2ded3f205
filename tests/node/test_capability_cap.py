"""A node caps itself at its site's tested capability (node.capability), as the clearing will: the
cap comes from the oracles (the smallest any answers, none when none answers or the network runs no
tests), the site's offers to one request add up to at most it (devices decided first keep theirs),
and the day-ahead forecast promises no more."""

from __future__ import annotations

from node.capability import SiteCapability, capped_total
from node.dispatch import Dispatcher, NodeDevice, Policy, open_dispatch_db
from node.forecast_offer import window_offers
from node.outbox import Outbox
from protocol.requests import FlexRequest

SITE = "0x" + "5e" * 20
START = 1_800_000_000 // 3_600 * 3_600


class FlatDevice:
    """A driver that can always shed `watts` (the parts of the device interface decide() uses)."""

    def __init__(self, watts: int):
        self.watts = watts

    def advance(self, now: float) -> None:
        pass

    def forecast_flexibility_w(self, start: int, end: int) -> int:
        return self.watts

    def forecast_flexibility_windows_w(self, windows) -> list[int]:
        return [self.watts for _ in windows]


def device(n: int, watts: int) -> NodeDevice:
    return NodeDevice(f"0x{0xd000 + n:040x}", bytes([n + 1]) * 32, FlatDevice(watts), zone=1, capacity_w=10_000)


def test_the_cap_is_the_smallest_oracle_answer_cached_and_none_without_one():
    answers = {"http://a": (200, {"capW": 2_500}), "http://b": (200, {"capW": 1_500}), "http://c": (0, None)}
    calls = []

    def fetch(url):
        calls.append(url)
        return answers[url.split("/v1")[0]]

    now = [0.0]
    capability = SiteCapability(SITE, lambda: list(answers), fetch, ttl_seconds=60, clock=lambda: now[0])
    assert capability.cap_w() == 1_500
    assert calls[0] == f"http://a/v1/sites/{SITE}/capability"
    assert capability.cap_w() == 1_500 and len(calls) == 3  # cached
    answers.update({"http://a": (200, {"capW": None}), "http://b": (404, None)})  # a network without tests
    now[0] = 61
    assert capability.cap_w() is None
    answers["http://a"] = (200, {"capW": True})  # not a number
    now[0] = 200
    assert capability.cap_w() is None


def test_capped_total_takes_the_parts_in_order():
    assert capped_total([1_000, 800], 1_500) == [1_000, 500]
    assert capped_total([2_000, 800], 1_500) == [1_500, 0]
    assert capped_total([2_000, 800], None) == [2_000, 800]


def test_the_sites_offers_add_up_to_its_cap_the_first_devices_keeping_theirs(tmp_path):
    policy = Policy(min_price_per_kwh=100, max_share_bps=10_000)
    devices = [device(0, 1_000), device(1, 2_000), device(2, 3_000)]
    dispatcher = Dispatcher(open_dispatch_db(str(tmp_path / "d.sqlite")), Outbox(tmp_path / "o.sqlite"), devices,
                            policy, 31337, "0x" + "5f" * 20, lambda: [], clock=lambda: START - 7_200, site=SITE,
                            capability=lambda: 2_500)
    request = FlexRequest(request_id=3, zone=1, start=START, end=START + 3_600, target_w=50_000, price_per_kwh=300,
                          payment_token="0x" + "bb" * 20)
    assert dispatcher.on_request(request) == 2_500  # 1_000 + 1_500 of 2_000 + nothing of 3_000
    watts = dict(dispatcher.db.execute("SELECT device, watts FROM participations WHERE request_id = 3").fetchall())
    assert watts == {devices[0].address: 1_000, devices[1].address: 1_500}
    reasons = [d["reason"] for d in dispatcher.decisions(3)]
    assert "capped at 1500 W by the site's tested capability (2500 W, 1000 W offered)" in reasons[1]
    assert reasons[2] == "the site's tested capability (2500 W) is taken by its other offers (2500 W)"
    # without a cap (a network that runs no tests) each device offers what it can
    uncapped = Dispatcher(open_dispatch_db(str(tmp_path / "u.sqlite")), Outbox(tmp_path / "u.sqlite2"), devices,
                          policy, 31337, "0x" + "5f" * 20, lambda: [], clock=lambda: START - 7_200, site=SITE)
    assert uncapped.on_request(request) == 6_000


def test_the_forecast_promises_no_more_than_the_cap():
    policy = Policy(min_price_per_kwh=100, max_share_bps=10_000, extra_share_bps=2_500, extra_premium_bps=5_000)
    windows = [(START, START + 3_600), (START + 3_600, START + 7_200)]
    devices = [device(0, 2_000), device(1, 2_000)]
    free = window_offers(policy, devices, windows, START - 60)
    assert [sum(t.watts for t in hour) for hour in free] == [4_000, 4_000]
    capped = window_offers(policy, devices, windows, START - 60, cap_w=3_500)
    assert [[(t.watts, t.price) for t in hour] for hour in capped] == [[(3_000, 100), (500, 150)]] * 2
