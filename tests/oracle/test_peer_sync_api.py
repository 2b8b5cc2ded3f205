"""GET /v1/meter-batches/range (oracle.peer_sync_api) on a real ingest app over HTTP, with batches
of devices registered on anvil: a page lists exactly the stored batches overlapping the range, as
signed, in store order, then the closing line; `next` pages through all of them; bad parameters are
400 problems."""

from __future__ import annotations

import random

import orjson
import pytest

from oracle import db, meter_store
from oracle.chain_view import ChainView
from oracle.ingest import Ack, Ingestor, IngestSettings
from oracle.ingest_api import create_ingest_app
from oracle.peer_sync_api import NDJSON, add_peer_sync_routes
from protocol.fast_verify import RegistryDomainVerifier

DAY = 96 * 900


@pytest.fixture
def peer(shared_devnet, tmp_path, serve_app):
    """An ingest app with the range route, on the shared devnet, served over HTTP: (url, ingestor)."""
    web3, manifest = shared_devnet.web3(), shared_devnet.manifest()
    engine = db.make_engine(str(tmp_path / "peer.sqlite"))
    db.init_db(engine)
    verifier = RegistryDomainVerifier(manifest.chainId, manifest.address("DeviceRegistry"))
    ingestor = Ingestor(engine, ChainView(web3, manifest, engine), verifier, IngestSettings(_env_file=None))
    app = create_ingest_app(ingestor)
    add_peer_sync_routes(app)
    yield serve_app(app), ingestor
    engine.dispose()


def fill(chain_ops, ingestor, devices: int = 3, days: int = 2):
    """`devices` fresh registered devices with `days` day-long batches each, ending before now; and
    the time range of the last day. Returns (stored batches by (device, sequence), range)."""
    rng = random.Random(7)
    now = chain_ops.chain_time()
    first = chain_ops.past_start(now, 96 * days + 1)
    batches = []
    for _ in range(devices):
        key = chain_ops.register()
        for day in range(days):
            readings = [rng.randrange(0, 400) for _ in range(96)]
            batches.append(chain_ops.batch(key, first + day * DAY, readings, day))
    answers = ingestor.accept_batches(batches, now)
    assert all(isinstance(a, Ack) and not a.replay for a in answers), answers
    last_day = (first + (days - 1) * DAY, first + days * DAY)
    return {(b.device, b.sequence): b for b in batches}, last_day


def get_page(url: str, **params) -> tuple[list[dict], dict, str]:
    import httpx

    response = httpx.get(f"{url}/v1/meter-batches/range", params=params, timeout=30)
    assert response.status_code == 200, response.text
    lines = [orjson.loads(line) for line in response.content.splitlines()]
    return lines[:-1], lines[-1], response.headers["content-type"]


def test_a_page_lists_the_batches_of_the_range_as_signed(peer, chain_ops):
    url, ingestor = peer
    stored, (start, end) = fill(chain_ops, ingestor)
    items, closing, media_type = get_page(url, **{"from": start, "to": end})
    assert media_type.startswith(NDJSON)
    in_range = {key: b for key, b in stored.items() if b.start < end and b.end > start}
    assert len(in_range) == 3 and len(stored) == 6
    assert {(i["device"], i["sequence"]) for i in items} == set(in_range)
    for item in items:
        batch = in_range[(item["device"], item["sequence"])]
        assert item["readings"] == list(batch.readings) and item["start"] == batch.start
        assert item["signature"] == "0x" + batch.signature.hex() and item["intervalSeconds"] == 900
        assert set(item) == {"device", "start", "intervalSeconds", "readings", "sequence", "signature", "receivedAt"}
    ids = [r.id for r in meter_store.batches_in_range(ingestor.engine, start, end)]
    assert closing == {"next": None, "cursor": ids[-1], "count": 3}


def test_next_pages_through_every_batch_in_store_order(peer, chain_ops):
    url, ingestor = peer
    stored, _ = fill(chain_ops, ingestor, devices=4, days=2)
    start, end = min(b.start for b in stored.values()), max(b.end for b in stored.values())
    seen, after, pages = [], 0, 0
    while after is not None:
        items, closing, _ = get_page(url, **{"from": start, "to": end, "after": after, "limit": 3})
        assert len(items) == closing["count"] <= 3
        seen += [(i["device"], i["sequence"]) for i in items]
        after, pages = closing["next"], pages + 1
    records = meter_store.batches_in_range(ingestor.engine, start, end, limit=100)
    assert seen == [(r.device, r.sequence) for r in records] and len(seen) == 8
    assert pages == 3  # 3 + 3 + 2: the last page says it is the last


@pytest.mark.parametrize("params, fragment", [
    ({"from": 10, "to": 10}, "must be below"),
    ({"from": 0, "to": 10, "limit": 5_001}, "limit"),
    ({"from": 0, "to": 10, "limit": 0}, "limit"),
    ({"from": -1, "to": 10}, "from"),
    ({"from": 0}, "to"),
    ({"from": 0, "to": 2**63}, "to"),
    ({"from": 0, "to": 10, "after": "x"}, "after"),
])
def test_bad_parameters_are_400_problems(peer, params, fragment):
    import httpx

    url, _ = peer
    response = httpx.get(f"{url}/v1/meter-batches/range", params=params, timeout=30)
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == "invalid_payload" and fragment in body["detail"]
