"""node.own_baseline: the node caps a commitment at its devices' recent use in the window."""

from __future__ import annotations

from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from node.devices.factory import build_device
from node.dispatch import NodeDevice, Policy, Request, decide
from node.metering import MeteredDevice, enqueue_history
from node.outbox import Outbox
from node.own_baseline import DAY, recent_window_w

REGISTRY = "0x" + "11" * 20
INTERVAL = 900
EVENT = 1_795_000_000 // DAY * DAY + 18 * 3_600  # 18:00 UTC


def outbox_with(tmp_path, daily_window_wh: list[list[int]], name: str = "o") -> tuple[Outbox, str]:
    """An outbox whose device drew `daily_window_wh[k-1]` (4 readings) in the event window k days ago,
    and 100 Wh in every other interval."""
    key = Account.create()
    outbox = Outbox(tmp_path / f"{name}.sqlite")
    days = len(daily_window_wh)
    first = EVENT - days * DAY - 4 * 3_600
    readings = []
    for t in range(first, EVENT - 3_600, INTERVAL):
        k, offset = (EVENT - t + DAY - 1) // DAY, (t - (EVENT - ((EVENT - t + DAY - 1) // DAY) * DAY)) // INTERVAL
        in_window = 0 <= offset < 4 and 1 <= k <= days
        readings.append(daily_window_wh[k - 1][offset] if in_window else 100)
    enqueue_history(outbox, MeteredDevice(key.address, key.key, None), first, readings, INTERVAL, 1, REGISTRY,
                    ["http://oracle"])
    return outbox, key.address


def test_the_highest_four_of_the_last_five_complete_days(tmp_path):
    # Window totals 2000, 4000, 400, 1200, 2400 Wh (1 to 5 days ago), older days ignored.
    days = [[500] * 4, [1000] * 4, [100] * 4, [300] * 4, [600] * 4, [5000] * 4]
    outbox, device = outbox_with(tmp_path, days)
    # highest four of the five most recent: 4000, 2400, 2000, 1200 -> 2400 Wh over one hour
    assert recent_window_w(outbox, device, EVENT, EVENT + 3_600) == 2_400


def test_too_little_history_gives_no_estimate(tmp_path):
    outbox, device = outbox_with(tmp_path, [[500] * 4])
    assert recent_window_w(outbox, device, EVENT, EVENT + 3_600) is None
    assert recent_window_w(Outbox(tmp_path / "empty.sqlite"), device, EVENT, EVENT + 3_600) is None


@settings(max_examples=25, deadline=None)
@given(window=st.lists(st.integers(0, 2_000), min_size=4, max_size=4), days=st.integers(2, 6))
def test_a_steady_device_is_estimated_exactly(tmp_path_factory, window, days):
    outbox, device = outbox_with(tmp_path_factory.mktemp("o"), [window] * days)
    assert recent_window_w(outbox, device, EVENT, EVENT + 3_600) == sum(window)


def test_the_estimate_caps_the_commitment_and_says_so():
    # This EV (seed 0, 11 days into its simulation) is charging through the evening window.
    driver = build_device({"kind": "ev_charger", "device_id": "ev", "seed": 0}, start_time=EVENT - 11 * DAY)
    device = NodeDevice("0x" + "22" * 20, b"\x01" * 32, driver, 1, 7_400)
    request = Request(1, 1, EVENT, EVENT + 3_600, 10_000, 300_000, "0x" + "33" * 20)
    free, _ = decide(Policy(), request, device, EVENT - 3_700)
    assert free == 5_920  # 80 % of 7,400 W
    capped, reason = decide(Policy(), request, device, EVENT - 3_700, recent_w=1_500)
    assert capped == 1_500 and "recent use in this window 1500 W" in reason
    assert decide(Policy(), request, device, EVENT - 3_700, recent_w=9_000)[0] == 5_920
    none, reason = decide(Policy(), request, device, EVENT - 3_700, recent_w=50)
    assert none == 0 and "recent use in this window 50 W" in reason


def test_the_setpoint_is_measured_from_recent_use_when_known():
    from node.dispatch import setpoint_w

    assert setpoint_w(power_now_w=3_000, committed_w=225, recent_w=225) == 0  # running now, idle on recent days
    assert setpoint_w(power_now_w=0, committed_w=500, recent_w=2_000) == 1_500
    assert setpoint_w(power_now_w=3_000, committed_w=1_000, recent_w=None) == 2_000  # no history: shed from now
    assert setpoint_w(power_now_w=100, committed_w=1_000, recent_w=None) == 0


def test_a_dispatch_database_from_before_recent_w_is_upgraded(tmp_path):
    import sqlite3

    from node.dispatch import open_dispatch_db

    path = tmp_path / "dispatch.sqlite"
    old = sqlite3.connect(path)
    old.executescript("CREATE TABLE participations (request_id INTEGER NOT NULL, device TEXT NOT NULL, "
                      "watts INTEGER NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL, state TEXT NOT NULL, "
                      "applied_at REAL, latency_ms REAL, PRIMARY KEY (request_id, device));"
                      "INSERT INTO participations VALUES (1, '0xabc', 500, 10, 20, 'committed', NULL, NULL);")
    old.commit()
    old.close()
    db = open_dispatch_db(str(path))
    assert db.execute("SELECT request_id, watts, recent_w FROM participations").fetchall() == [(1, 500, None)]
