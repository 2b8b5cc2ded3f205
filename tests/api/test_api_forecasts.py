"""Day-ahead forecasts over real HTTP, against a real anvil chain and the real indexer: a site meter's
signed forecast is stored as its latest, every refusal says why (a wrong key, an unregistered site,
a device that is not a site meter, the wrong zone, a stale sequence, an offer above the rating, an
unregistered site), and a zone's supply curve is the rule of api.forecasts, worked by hand for two
sites with tiers. The curve's invariants hold for any forecasts (hypothesis, against a brute force)."""

from __future__ import annotations

import json

import httpx
import pytest
from conftest import PARAMS, Chain, http, indexed_to_head
from eth_account import Account
from hypothesis import given, settings
from hypothesis import strategies as st

from api.forecasts import Covering, supply_curve
from api.routes_forecast import ForecastAccepted, SupplyCurve
from protocol.forecast import FlexForecast, Tranche, encode_forecast

ZONE = 11
H = 3_600
DAY = 1_780_000_000 // 86_400 * 86_400
PROBLEM = "application/problem+json"


def problem(response: httpx.Response, status: int, code: str, mentions: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["code"] == code and mentions in body["detail"], body


def tiers(*pairs: tuple[int, int]) -> tuple[Tranche, ...]:
    return tuple(Tranche(watts, price) for watts, price in pairs)


class Site:
    """A site meter's key and the forecasts it signs."""

    def __init__(self, chain: Chain, key: bytes | str, address: str):
        self.chain, self.key, self.address = chain, key, address

    def forecast(self, start: int, hours, sequence: int, zone: int = ZONE, key=None, site: str | None = None) -> dict:
        unsigned = FlexForecast(site or self.address, zone, start, tuple(hours), sequence)
        return encode_forecast(unsigned.signed(key or self.key, self.chain.chain_id, self.chain.registry.address))


@pytest.fixture(params=["sqlite", "postgres"])
def database(request, tmp_path):
    """The mirror's database: a SQLite file, or a database of its own on the session's PostgreSQL server."""
    if request.param == "sqlite":
        return str(tmp_path / "forecasts.sqlite")
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(request.getfixturevalue("postgres_url"))
    with psycopg.connect(host=url.host, port=url.port, user=url.username, dbname="postgres", autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS negawatt_api_forecasts")
        conn.execute("CREATE DATABASE negawatt_api_forecasts")
    return url.set(database="negawatt_api_forecasts").render_as_string(hide_password=False)


def test_forecasts_are_admitted_by_the_rule_and_make_the_zone_supply_curve(devnet_factory, start_api, database):
    chain = Chain(devnet_factory(PARAMS))
    meters = [chain.register(capacity_w=10_000, zone=ZONE, kind=6) for _ in range(3)]
    a, b, c = (Site(chain, m.key, m.address) for m in meters)
    elsewhere = chain.register(capacity_w=10_000, zone=ZONE + 1, kind=6)
    heat_pump = chain.register(capacity_w=3_000, zone=ZONE, kind=1)
    url, _app = start_api(chain, database=database)
    client = http(url)
    indexed_to_head(client, chain)

    # site A, 24 h from DAY: 500 W at 50 in every hour but 18:00 and 19:00 (tiered, see the curve below)
    a_hours = [tiers((500, 50))] * 24
    a_hours[18] = tiers((3_000, 100), (1_000, 250))
    a_hours[19] = tiers((2_000, 100), (2_000, 200))
    first = client.post("/v1/forecasts", json=a.forecast(DAY, [tiers((9_000, 10))] * 24, sequence=5))
    assert first.status_code == 200, first.text
    ForecastAccepted.model_validate(first.json(), strict=True)
    assert first.json() == {"site": a.address, "zone": ZONE, "start": DAY, "end": DAY + 24 * H, "sequence": 5,
                            "status": "stored"}
    replaced = a.forecast(DAY, a_hours, sequence=6)
    assert client.post("/v1/forecasts", json=replaced).json()["status"] == "stored"
    assert client.post("/v1/forecasts", json=replaced).json()["status"] == "duplicate"  # a retry is harmless

    # site B, 4 h from 17:00: nothing at 17:00, 1,500 W at 150 at 18:00, and 500 W more at 300 at 19:00
    b_hours = [(), tiers((1_500, 150)), tiers((1_500, 150), (500, 300)), tiers((1_500, 150))]
    assert client.post("/v1/forecasts", json=b.forecast(DAY + 17 * H, b_hours, sequence=1)).status_code == 200
    # site C forecasts only from 19:00: it cannot hold a window that starts at 18:00
    assert client.post("/v1/forecasts", json=c.forecast(DAY + 19 * H, [tiers((4_000, 1))], sequence=1)) \
        .status_code == 200
    # a site meter of another zone never counts in this one
    other = Site(chain, elsewhere.key, elsewhere.address)
    assert client.post("/v1/forecasts", json=other.forecast(DAY, [tiers((7_000, 1))] * 24, 1, zone=ZONE + 1)) \
        .status_code == 200

    # refusals, each with its reason
    problem(client.post("/v1/forecasts", json=a.forecast(DAY, a_hours, 7, key=b.key)), 400, "bad_signature",
            f"not by the site meter {a.address}")
    stranger = Account.create()
    problem(client.post("/v1/forecasts", json=a.forecast(DAY, a_hours, 1, key=stranger.key, site=stranger.address)),
            403, "unknown_device", "not a registered device")
    problem(client.post("/v1/forecasts", json=a.forecast(DAY, a_hours, 1, key=heat_pump.key, site=heat_pump.address)),
            403, "forbidden", "is a heat_pump, not a site meter")
    problem(client.post("/v1/forecasts", json=a.forecast(DAY, a_hours, 7, zone=ZONE + 1)), 422, "zone_mismatch",
            f"registered in zone {ZONE}")
    problem(client.post("/v1/forecasts", json=a.forecast(DAY + H, a_hours, 6)), 409, "sequence_conflict",
            "sequence 6 is not above the stored forecast's 6")
    problem(client.post("/v1/forecasts", json=a.forecast(DAY, a_hours, 2)), 409, "sequence_conflict", "not above")
    problem(client.post("/v1/forecasts", json=a.forecast(DAY, [tiers((6_000, 1), (4_001, 2))], 7)), 422,
            "watts_out_of_range", "10001 W, above the site meter's rating of 10000 W")
    too_long = a.forecast(DAY, [tiers((1, 1))] * 48, 7)
    too_long["hours"].append([{"watts": 1, "price": 1}])
    problem(client.post("/v1/forecasts", json=too_long), 400, "invalid_parameter", "at most 48 items")
    problem(client.post("/v1/forecasts", json={**replaced, "sequence": "7"}), 400, "invalid_parameter", "sequence")
    problem(client.get(f"/v1/zones/{ZONE}/supply", params={"start": DAY + 5, "end": DAY + 5}), 400,
            "invalid_parameter", "start must be before end")

    # the supply curve over 18:00-20:00, by hand (api.forecasts: each site's watts at or below a price is
    # its minimum over the window's hours; the curve sums the sites that cover every hour):
    #   A: at 100 min(3000, 2000) = 2000; at 150 still 2000; at 200 min(3000, 2000+2000) = 3000;
    #      at 250 min(3000+1000, 4000) = 4000; at 300 4000
    #   B: at 100 nothing; at 150 min(1500, 1500) = 1500; at 300 min(1500, 1500+500 at 19:00 only) = 1500
    #   C: misses 18:00, not counted; the other zone's site is not counted
    #   curve: 100 -> 2000, 150 -> 2000+1500 = 3500, 200 -> 3000+1500 = 4500, 250 -> 4000+1500 = 5500,
    #          300 -> 4000+1500 = 5500
    expected = [("100", 2_000), ("150", 3_500), ("200", 4_500), ("250", 5_500), ("300", 5_500)]
    curve = client.get(f"/v1/zones/{ZONE}/supply", params={"start": DAY + 18 * H, "end": DAY + 20 * H}).json()
    SupplyCurve.model_validate(curve, strict=True)
    assert curve == {"zone": ZONE, "start": DAY + 18 * H, "end": DAY + 20 * H, "sites": 2,
                     "curve": [{"price": p, "watts": w} for p, w in expected]}
    # a window inside whole hours counts those whole hours: 18:30-19:15 is 18:00-20:00
    assert client.get(f"/v1/zones/{ZONE}/supply", params={"start": DAY + 18 * H + 1_800,
                                                          "end": DAY + 19 * H + 900}).json() == curve
    # 19:00-20:00: A 2000 at 100, 4000 at 200; B 1500 at 150, 2000 at 300; C 4000 at 1
    #   1 -> 4000, 100 -> 6000, 150 -> 7500, 200 -> 9500, 300 -> 4000+4000+2000 = 10000
    late = client.get(f"/v1/zones/{ZONE}/supply", params={"start": DAY + 19 * H, "end": DAY + 20 * H}).json()
    assert (late["sites"], [(p["price"], p["watts"]) for p in late["curve"]]) == (
        3, [("1", 4_000), ("100", 6_000), ("150", 7_500), ("200", 9_500), ("300", 10_000)])
    # 17:00-18:00: A 500 at 50; B covers the hour but offers nothing in it (counted, 0 W)
    early = client.get(f"/v1/zones/{ZONE}/supply", params={"start": DAY + 17 * H, "end": DAY + 18 * H}).json()
    assert (early["sites"], early["curve"]) == (2, [{"price": "50", "watts": 500}])
    # beyond every forecast: nothing
    assert client.get(f"/v1/zones/{ZONE}/supply", params={"start": DAY + 30 * H, "end": DAY + 31 * H}).json()[
        "curve"] == []

    # B is unregistered on chain (a site meter is never deactivated): it drops out of the curve and may not
    # forecast any more
    chain.owner.send(chain.registry.functions.unregister(b.address))
    indexed_to_head(client, chain)
    curve = client.get(f"/v1/zones/{ZONE}/supply", params={"start": DAY + 18 * H, "end": DAY + 20 * H}).json()
    assert (curve["sites"], [(p["price"], p["watts"]) for p in curve["curve"]]) == (
        1, [("100", 2_000), ("200", 3_000), ("250", 4_000)])
    problem(client.post("/v1/forecasts", json=b.forecast(DAY, [tiers((1, 1))], 2)), 403, "unknown_device",
            "not a registered device")

    # the largest forecast (48 h of two tranches at the highest prices, the last sequence) fits the body cap
    top = 2**128 - 1
    largest = c.forecast(DAY + 19 * H, [tiers((4_000, top - 1), (6_000, top))] * 48, sequence=2**63 - 1)
    assert len(json.dumps(largest)) < 16 * 1024
    assert client.post("/v1/forecasts", json=largest).json()["status"] == "stored"
    # 19:00-20:00 now: A 2000 at 100, 4000 at 200; C 4000 at top - 1, 4000+6000 at top
    #   100 -> 2000, 200 -> 4000, top - 1 -> 8000, top -> 14000 (prices past 2**63 served exactly, as strings)
    late = client.get(f"/v1/zones/{ZONE}/supply", params={"start": DAY + 19 * H, "end": DAY + 20 * H}).json()
    assert (late["sites"], [(p["price"], p["watts"]) for p in late["curve"]]) == (
        2, [("100", 2_000), ("200", 4_000), (str(top - 1), 8_000), (str(top), 14_000)])


tranche = st.tuples(st.integers(1, 5_000), st.integers(0, 20))
hour = st.lists(tranche, max_size=2, unique_by=lambda t: t[1]).map(
    lambda h: tuple(Tranche(w, p) for w, p in sorted(h, key=lambda t: t[1])))
coverings = st.lists(st.builds(Covering, st.integers(0, 6).map(lambda i: DAY + i * H),
                               st.lists(hour, min_size=1, max_size=8).map(tuple)), max_size=5)


@settings(max_examples=200, deadline=None)
@given(coverings=coverings, first=st.integers(0, 10), length=st.integers(1, 4 * H))
def test_the_curve_is_the_brute_force_rule_ascending_and_non_decreasing(coverings, first, length):
    start = DAY + first * 1_200
    end = start + length
    sites, curve = supply_curve(coverings, start, end)
    prices = [p for p, _ in curve]
    assert prices == sorted(set(prices))
    assert all(a <= b for (_, a), (_, b) in zip(curve, curve[1:]))
    # brute force: every second of the window must be inside a forecast hour of the site
    first_hour, last_hour = start // H * H, -(-end // H) * H
    counted = [c for c in coverings if c.start <= first_hour and c.start + H * len(c.hours) >= last_hour]
    assert sites == len(counted)
    window = [[c.hours[(t - c.start) // H] for t in range(first_hour, last_hour, H)] for c in counted]
    assert prices == sorted({t.price for hours in window for h in hours for t in h})
    for price, watts in curve:
        assert watts == sum(min(sum(t.watts for t in h if t.price <= price) for h in hours) for hours in window)
