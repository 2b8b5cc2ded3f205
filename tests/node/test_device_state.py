"""A restarted node resumes its simulated devices: snapshot, store, resume, and the same trajectory."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from node.device_state import DeviceStateStore
from node.devices.factory import DEVICE_CLASSES, build_device

T0 = 1_790_000_000


@settings(max_examples=30, deadline=None)
@given(kind=st.sampled_from(sorted(DEVICE_CLASSES)), seed=st.integers(0, 50),
       first=st.integers(60, 3 * 86_400), second=st.integers(60, 86_400), setpoint=st.none() | st.integers(0, 3_000))
def test_a_resumed_device_follows_the_same_trajectory(kind, seed, first, second, setpoint):
    original = build_device({"kind": kind, "device_id": "dev", "seed": seed}, start_time=T0)
    original.advance(T0 + first)
    if setpoint is not None:
        original.apply_setpoint(setpoint, "test")
    snapshot = original.snapshot()
    restarted = build_device({"kind": kind, "device_id": "dev", "seed": seed}, start_time=T0 + first + 5_000)
    assert restarted.resume(snapshot)
    for device in (original, restarted):
        device.advance(T0 + first + second)
    assert restarted.energy_wh() == original.energy_wh()
    assert restarted.state() == original.state()


def test_a_snapshot_of_another_configuration_is_refused():
    device = build_device({"kind": "battery", "device_id": "a", "seed": 1}, start_time=T0)
    other_seed = build_device({"kind": "battery", "device_id": "a", "seed": 2}, start_time=T0)
    other_params = build_device({"kind": "battery", "device_id": "a", "seed": 1, "capacity_wh": 5_000}, start_time=T0)
    device.advance(T0 + 3_600)
    assert not other_seed.resume(device.snapshot())
    assert not other_params.resume(device.snapshot())
    assert not other_seed.resume({"junk": 1})


def test_the_store_survives_reopening(tmp_path):
    path = tmp_path / "devices.sqlite"
    device = build_device({"kind": "heat_pump", "device_id": "hp", "seed": 4}, start_time=T0)
    device.advance(T0 + 7_200)
    store = DeviceStateStore(path)
    assert store.save([("0xabc", device)]) == 1
    store.close()
    fresh = build_device({"kind": "heat_pump", "device_id": "hp", "seed": 4}, start_time=T0 + 10**6)
    reopened = DeviceStateStore(path)
    assert reopened.resume("0xabc", fresh)
    assert fresh.energy_wh() == device.energy_wh() and fresh.now == device.now
    assert not reopened.resume("0xdef", fresh)
