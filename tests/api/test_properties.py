"""Invariants, with Hypothesis:
- cursor pagination visits every matching row exactly once, in order, whatever the page size;
- a rollback of the projection to a fork block, followed by the canonical branch, leaves the mirror
  equal to applying the canonical chain from scratch (what the indexer does on a reorg)."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from sqlalchemy.pool import StaticPool

from api.events import ChainLog
from api.journal import rollback
from api.models import CHAIN_TABLES, api_metadata
from api.projection import Projection
from api.reads import DeviceFilter, Reads

ADDRESSES = [f"0x{i:040x}" for i in range(1, 13)]
OWNERS = ["0x" + "aa" * 19 + f"{i:02x}" for i in range(3)]
TOKEN = "0x" + "77" * 20


def memory_engine():
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    api_metadata.create_all(engine)
    return engine


# ---------------------------------------------------------------------- events

device_event = st.one_of(
    st.builds(lambda d, o, k, c, z: ("DeviceRegistry", "DeviceRegistered",
                                     {"device": d, "owner": o, "kind": k, "capacityW": c, "zone": z}),
              st.sampled_from(ADDRESSES), st.sampled_from(OWNERS), st.integers(0, 5), st.integers(1, 10_000),
              st.integers(0, 3)),
    st.builds(lambda d, o, a: ("DeviceRegistry", "DeviceActiveChanged", {"device": d, "owner": o, "active": a}),
              st.sampled_from(ADDRESSES), st.sampled_from(OWNERS), st.booleans()),
    st.builds(lambda d, f, t: ("DeviceRegistry", "DeviceTransferred", {"device": d, "from": f, "to": t}),
              st.sampled_from(ADDRESSES), st.sampled_from(OWNERS), st.sampled_from(OWNERS)),
    st.builds(lambda d, o: ("DeviceRegistry", "DeviceUnregistered", {"device": d, "owner": o}),
              st.sampled_from(ADDRESSES), st.sampled_from(OWNERS)),
)
request_event = st.one_of(
    st.builds(lambda i, z: ("FlexMarket", "RequestOpened",
                            {"requestId": i, "buyer": OWNERS[0], "zone": z, "start": 100, "end": 200, "targetW": 5,
                             "pricePerKWh": 7, "paymentToken": TOKEN, "maxBudget": 10**20}),
              st.integers(1, 6), st.integers(0, 3)),
    st.builds(lambda i, p: ("FlexMarket", "RequestSettling", {"requestId": i, "payout": p}),
              st.integers(1, 6), st.integers(0, 10**19)),
    st.builds(lambda i, p, r: ("FlexMarket", "RequestSettled",
                               {"requestId": i, "payout": p, "refund": r, "recipient": TOKEN}),
              st.integers(1, 6), st.integers(0, 10**19), st.integers(0, 10**19)),
    st.builds(lambda i, r: ("FlexMarket", "RequestCancelled", {"requestId": i, "refund": r}),
              st.integers(1, 6), st.integers(0, 10**9)),
)
money_event = st.one_of(
    st.builds(lambda a, c: ("RewardDistributor", "Claimed",
                            {"account": a, "token": TOKEN, "amount": 1, "cumulativeClaimed": c}),
              st.sampled_from(OWNERS), st.integers(0, 2**200)),
    st.builds(lambda a, b: ("Staking", "Staked", {"account": a, "amount": 1, "bonded": b}),
              st.sampled_from(OWNERS), st.integers(0, 2**100)),
    st.builds(lambda a, m, b, u: ("Staking", "Slashed", {"account": a, "amount": m, "recipient": TOKEN,
                                                         "requested": m, "bonded": b, "unbonding": u}),
              st.sampled_from(OWNERS), st.integers(0, 2**90), st.integers(0, 2**90), st.integers(0, 2**90)),
)
event = st.one_of(device_event, request_event, money_event)
block_events = st.lists(event, min_size=0, max_size=4)


def to_logs(blocks: list[list[tuple[str, str, dict]]], first_block: int, branch: str) -> list[ChainLog]:
    """Chain logs for consecutive blocks (each block's events in order)."""
    logs = []
    for offset, events in enumerate(blocks):
        number = first_block + offset
        for index, (contract, name, args) in enumerate(events):
            logs.append(ChainLog(number, f"0x{branch}{number:062x}", index, f"0x{branch}{number:058x}{index:04x}",
                                 contract, name, args))
    return logs


def apply_blocks(engine, logs: list[ChainLog]) -> None:
    """Apply logs one block per transaction, as the indexer commits ranges."""
    by_block: dict[int, list[ChainLog]] = {}
    for log in logs:
        by_block.setdefault(log.block, []).append(log)
    for number in sorted(by_block):
        with engine.begin() as connection:
            Projection(connection).apply(by_block[number])


def mirror_rows(engine) -> dict[str, list[tuple]]:
    with engine.connect() as connection:
        return {name: sorted(tuple(row) for row in connection.execute(text(f"SELECT * FROM {name}")))
                for name in (*CHAIN_TABLES, "chain_events")}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(common=st.lists(block_events, max_size=6), orphan=st.lists(block_events, min_size=1, max_size=6),
       canonical=st.lists(block_events, max_size=6))
def test_rollback_then_canonical_equals_canonical_from_scratch(common, orphan, canonical):
    fork = 100 + len(common) - 1
    reorged = memory_engine()
    apply_blocks(reorged, to_logs(common, 100, "a"))
    apply_blocks(reorged, to_logs(orphan, fork + 1, "b"))
    with reorged.begin() as connection:
        rollback(connection, fork)
        connection.execute(text("DELETE FROM chain_events WHERE block > :f"), {"f": fork})
    apply_blocks(reorged, to_logs(canonical, fork + 1, "c"))

    scratch = memory_engine()
    apply_blocks(scratch, to_logs(common, 100, "a") + to_logs(canonical, fork + 1, "c"))
    assert mirror_rows(reorged) == mirror_rows(scratch)


# ---------------------------------------------------------------------- pagination

def populated(devices: list[tuple[str, str, int, int, bool]]) -> Any:
    engine = memory_engine()
    logs = []
    for i, (address, owner, kind, zone, active) in enumerate(devices):
        logs.append(ChainLog(1, "0x" + "00" * 32, 2 * i, "0x" + "11" * 32, "DeviceRegistry", "DeviceRegistered",
                             {"device": address, "owner": owner, "kind": kind, "capacityW": 100, "zone": zone}))
        if not active:
            logs.append(ChainLog(1, "0x" + "00" * 32, 2 * i + 1, "0x" + "11" * 32, "DeviceRegistry",
                                 "DeviceActiveChanged", {"device": address, "owner": owner, "active": False}))
    with engine.begin() as connection:
        Projection(connection).apply(logs)
    return engine


address = st.integers(1, 2**160 - 1).map(lambda n: f"0x{n:040x}")
device_rows = st.lists(st.tuples(address, st.sampled_from(OWNERS), st.integers(0, 5), st.integers(0, 2),
                                 st.booleans()), max_size=40, unique_by=lambda d: d[0])
filters = st.builds(DeviceFilter, zone=st.none() | st.integers(0, 2), kind=st.none() | st.integers(0, 5),
                    owner=st.none() | st.sampled_from(OWNERS), active=st.none() | st.booleans())


@settings(max_examples=80, deadline=None)
@given(devices=device_rows, where=filters, page=st.integers(1, 7))
def test_cursor_pagination_visits_every_row_once(devices, where, page):
    reads = Reads(populated(devices))
    seen, cursor, pages = [], None, 0
    while True:
        result = reads.devices(where, cursor, page)
        assert len(result["items"]) <= page
        seen += [d["address"] for d in result["items"]]
        pages += 1
        cursor = result["next"]
        if cursor is None:
            break
        assert pages <= len(devices) + 1
    expected = sorted(a for a, o, k, z, active in devices
                      if (where.zone is None or z == where.zone) and (where.kind is None or k == where.kind)
                      and (where.owner is None or o == where.owner) and (where.active is None or active == where.active))
    assert seen == expected  # every row, once, in address order
