"""A capability test settled by hand (oracle.capability_settlement through oracle.epoch): the draw,
a site that shed its load passes with the right testedW, one that did not fails, the control mean,
the pay, and the records identical on two independent oracle computations."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from oracle.baselines import CAISO, BaselineSpec
from oracle.capability_records import records_of_document
from oracle.capability_settlement import capability_meters, capability_request_input, enrolled_sites
from oracle.chain_view import DeviceInfo, RequestInfo
from oracle.epoch import OracleEconomics, event_window
from oracle.settlement import SettlementParams, settle_epoch, settle_request
from oracle.site_settlement import HoldoutSeedUnknown
from oracle.report_store import report_document
from protocol.capability import NO_BASELINE, PROBATION_W, TOO_LITTLE, CapabilityRecord, CapabilityRules, is_tested
from protocol.kinds import DeviceKind
from protocol.units import SECONDS_PER_DAY

INTERVAL = 900
DAY = SECONDS_PER_DAY
START = 1_700_000_000 // DAY * DAY + 40 * DAY + 18 * 3_600
END = START + 900  # a 15-minute test: one interval
TESTER = "0x" + "7e" * 20
TOKEN = "0x" + "bb" * 20
SEED = bytes(range(32))
N = 12
SITES = [f"0x{0x5100 + i:040x}" for i in range(N)]
HEATERS = [f"0x{0xd100 + i:040x}" for i in range(N)]
OWNERS = [f"0x{0x0100 + i:040x}" for i in range(N)]
RULES = CapabilityRules(TESTER, 3_000)
TESTED = [s for s in SITES if is_tested(SEED, 9, s, RULES.test_bps)]


def capability_test() -> RequestInfo:
    return RequestInfo(request_id=9, zone=1, start=START, end=END, target_w=1, price_per_kwh=300_000,
                       payment_token=TOKEN, buyer=TESTER, max_budget=10**12, holdout_bps=5_000,
                       gate_closure=START - 900, opened_block=100)


def registry() -> dict[str, DeviceInfo]:
    out = {}
    for site, heater, owner in zip(SITES, HEATERS, OWNERS):
        out[site] = DeviceInfo(site, owner, int(DeviceKind.SITE_METER), 20_000, 1, True, registered_block=50)
        out[heater] = DeviceInfo(heater, owner, int(DeviceKind.WATER_HEATER), 3_000, 1, True, site=site,
                                 registered_block=51)
    return out


def devices_at(site: str) -> list[str]:
    return [HEATERS[SITES.index(site)]] if site in SITES else []


def readings(shed: set[str], drift_wh: int = 0) -> dict[str, dict[int, int]]:
    """Each site a flat 1,000 Wh per interval (+10 n), its heater 500 Wh of it, for 30 days. In the
    test interval every site's meter reads `drift_wh` more (the whole zone's baseline error), and a
    site in `shed` turned its heater off: 500 Wh less on the site meter, 0 on the heater."""
    out: dict[str, dict[int, int]] = {}
    for n, (site, heater) in enumerate(zip(SITES, HEATERS)):
        meter, device = {}, {}
        for t in range(START - 30 * DAY, END, INTERVAL):
            in_test = t == START
            cut = in_test and site in shed
            meter[t] = 1_000 + 10 * n + (drift_wh if in_test else 0) - (500 if cut else 0)
            device[t] = 0 if cut else 500
        out[site], out[heater] = meter, device
    return out


def settle(shed, drift_wh=0, rules=RULES, devices=None, seed=SEED, data=None):
    request = capability_test()
    devices = devices or registry()
    spec = BaselineSpec(CAISO, adjustment="none")
    return capability_request_input(request, devices, data or readings(shed, drift_wh), spec, rules,
                                    event_window(request, INTERVAL), INTERVAL, devices_at, seed)


def test_the_draw_picks_a_share_and_the_rest_is_the_control_group():
    assert 1 <= len(TESTED) < N  # the fixed seed draws some, not all (so the test below means something)
    _inputs, _records, verification = settle(set(TESTED))
    groups = {e["site"]: e["group"] for e in verification["sites"]}
    assert {s for s, g in groups.items() if g == "treatment"} == set(TESTED)
    assert verification["controlSites"] == N - len(TESTED)
    assert enrolled_sites(capability_test(), registry(), devices_at) == SITES
    assert set(capability_meters(capability_test(), registry(), devices_at)) == set(SITES) | set(HEATERS)


def test_a_site_that_shed_passes_with_its_tested_w_and_one_that_did_not_fails():
    shed = set(TESTED[1:])  # the first tested site did nothing
    request_in, _records, verification = settle(shed)
    records = {r["site"]: r for r in verification["capability"]}
    assert set(records) == set(TESTED)
    # a shed site: 500 Wh less in one 900 s interval = 500 * 3600 / 900 = 2000 W; control mean 0
    for site in TESTED[1:]:
        assert records[site] == {"site": site, "requestId": 9, "testedW": 2_000, "passed": True, "testedAt": START}
    # the idle one: 0 W against the 2000 W its heater's baseline says it could shed
    assert records[TESTED[0]] == {"site": TESTED[0], "requestId": 9, "testedW": 0, "passed": False,
                                  "testedAt": START}
    entry = next(e for e in verification["sites"] if e["site"] == TESTED[0])
    assert entry["expectedW"] == 2_000 and entry["reasons"] == [TOO_LITTLE]
    # pay: 2000 W over 900 s = 500 Wh at 0.3 per Wh-thousand = 500 * 300_000 // 1000 per passed site
    params = SettlementParams(fee_account="0x" + "fe" * 20, protocol_token="0x" + "aa" * 20, interval_seconds=INTERVAL)
    result = settle_request(request_in, params)
    paid = {d.device.lower(): d for d in result.devices}
    assert all(paid[s.lower()].payout == 150_000 and paid[s.lower()].penalty == 0 for s in TESTED[1:])
    assert paid[TESTED[0].lower()].payout == 0 and paid[TESTED[0].lower()].penalty == 0
    assert result.payout == 150_000 * (len(TESTED) - 1)


def test_the_control_groups_common_error_is_taken_out():
    # every site's meter reads 200 Wh more in the test interval (a cold snap): the shed sites' r is
    # (500 - 200) * 4 = 1200 W, the control mean -800 W, so testedW = 1200 - (-800) = 2000 W again
    assert N - len(TESTED) >= 5
    _inputs, _records, verification = settle(set(TESTED), drift_wh=200)
    assert verification["controlMeanW"] == -800
    assert {r["testedW"] for r in verification["capability"]} == {2_000}


def test_a_site_without_history_fails_with_the_reason_and_no_seed_settles_nothing():
    data = readings(set(TESTED))
    data[TESTED[0]] = {START: 100}  # no history: no baseline
    _inputs, _records, verification = settle(set(TESTED), data=data)
    entry = next(e for e in verification["sites"] if e["site"] == TESTED[0])
    assert entry["reasons"] == [NO_BASELINE] and entry["passed"] is False
    with pytest.raises(HoldoutSeedUnknown):
        settle(set(TESTED), seed=None)


def test_a_site_registered_after_the_test_opened_is_not_enrolled():
    devices = registry()
    devices[SITES[0]] = replace(devices[SITES[0]], registered_block=101)
    assert SITES[0] not in enrolled_sites(capability_test(), devices, devices_at)


def test_records_are_identical_on_two_oracles_and_read_back_from_the_report():
    params = SettlementParams(fee_account="0x" + "fe" * 20, protocol_token="0x" + "aa" * 20, interval_seconds=INTERVAL)
    documents = []
    for order in (SITES, list(reversed(SITES))):  # another oracle: another dict order, same data
        devices = {s: registry()[s] for s in order} | {h: registry()[h] for h in HEATERS}
        data = {k: dict(v) for k, v in reversed(list(readings(set(TESTED[1:])).items()))}
        request_in, records, verification = settle(set(TESTED[1:]), devices=devices, data=data)
        settlement = settle_epoch(1, bytes(32), {}, [request_in], params, 10**30)
        settlement.verifications = {9: verification}
        documents.append(report_document(bytes(32), settlement, {9: records}))
    assert documents[0].canonical_json() == documents[1].canonical_json()
    got = records_of_document(documents[0])
    assert sorted(got, key=lambda r: r.site) == sorted(
        [CapabilityRecord(s, 9, 0 if s == TESTED[0] else 2_000, s != TESTED[0], START) for s in TESTED],
        key=lambda r: r.site)
    json.loads(documents[0].canonical_json())  # and it is plain JSON


def test_compute_epoch_settles_a_test_of_the_tester_by_the_draw(monkeypatch):
    """oracle.epoch routes a request of the test budget account to the capability settlement: no
    commitments read, the tested sites paid, the records in the epoch's verification."""
    from oracle import epoch

    data = readings(set(TESTED))
    asked = {}

    def readings_in_range(_engine, meters, from_ts, to_ts, _interval=None):
        asked["meters"] = sorted(meters)
        return {m: data.get(m, {}) for m in meters}

    monkeypatch.setattr(epoch.meter_store, "readings_in_range", readings_in_range)
    monkeypatch.setattr(epoch.db, "commitments_of_request", lambda engine, request_id: [])
    params = SettlementParams(fee_account="0x" + "fe" * 20, protocol_token="0x" + "aa" * 20, interval_seconds=INTERVAL)
    economics = OracleEconomics(params=params, baseline=BaselineSpec(CAISO), tests=RULES)
    settlement, _details = epoch.compute_epoch(None, [capability_test()], registry(), economics, 1, bytes(32), {},
                                               10**30, seed_reader=lambda request: SEED, devices_at=devices_at)
    assert asked["meters"] == sorted(SITES + HEATERS)
    assert {r["site"] for r in settlement.verifications[9]["capability"]} == set(TESTED)
    assert settlement.requests[0].payout == 150_000 * len(TESTED)
    # the same request from another buyer is an ordinary request: nothing committed, nothing paid
    other = replace(economics, tests=CapabilityRules("0x" + "99" * 20))
    settlement, _ = epoch.compute_epoch(None, [capability_test()], registry(), other, 1, bytes(32), {}, 10**30,
                                        seed_reader=lambda request: SEED, devices_at=devices_at)
    assert settlement.requests[0].payout == 0 and 9 not in settlement.verifications


def test_the_clearing_caps_from_final_reports_and_the_oracle_serves_them(tmp_path):
    """oracle.capability_records reads the records of FINAL reports only; the Clearer caps with them
    (latest passed, else probation) and GET /v1/sites/{site}/capability serves that cap."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from oracle import db
    from oracle.capability_api import add_capability_routes
    from oracle.clearing_service import Clearer
    from oracle.report_store import ReportStore
    from protocol.statuses import StoredReportStatus

    engine = db.make_engine(str(tmp_path / "oracle.sqlite"))
    db.init_db(engine)
    store = ReportStore(engine)
    params = SettlementParams(fee_account="0x" + "fe" * 20, protocol_token="0x" + "aa" * 20, interval_seconds=INTERVAL)
    request_in, records, verification = settle(set(TESTED[1:]))
    settlement = settle_epoch(1, bytes(32), {}, [request_in], params, 10**30)
    settlement.verifications = {9: verification}
    document = report_document(bytes(32), settlement, {9: records})
    clearer = Clearer.__new__(Clearer)  # only what the caps read: the report store and the test rules
    clearer.store, clearer.tests, clearer.address, clearer._caps = store, RULES, "0x" + "0c" * 20, None
    app = FastAPI()
    add_capability_routes(app, clearer)
    client = TestClient(app)

    store.save(document, StoredReportStatus.COMPUTED)  # not final: caps nothing yet
    assert clearer.site_caps() == {}
    assert client.get(f"/v1/sites/{TESTED[1]}/capability").json()["capW"] == PROBATION_W
    store.set_status(document.digest, StoredReportStatus.FINAL)
    assert clearer.site_caps() == {s.lower(): 2_000 for s in TESTED[1:]}
    answer = client.get(f"/v1/sites/{TESTED[1]}/capability").json()
    assert answer["capW"] == 2_000 and answer["probationW"] == PROBATION_W
    assert answer["records"] == [{"site": TESTED[1], "requestId": 9, "testedW": 2_000, "passed": True,
                                  "testedAt": START}]
    failed = client.get(f"/v1/sites/{TESTED[0]}/capability").json()
    assert failed["capW"] == PROBATION_W and failed["records"][0]["passed"] is False
    assert client.get("/v1/sites/0x12/capability").status_code == 400
    clearer.tests = CapabilityRules()  # a network that runs no tests caps nothing
    assert clearer.site_caps() is None and client.get(f"/v1/sites/{TESTED[1]}/capability").json()["capW"] is None
