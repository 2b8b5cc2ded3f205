"""node.uploader's bulk path against a real oracle ingest app (oracle.ingest_api over uvicorn) on
anvil: a backlog goes in one POST /v1/meter-batches/bulk, and each batch ends acked, retried or
rejected exactly as its single post would have left it."""

from __future__ import annotations

import httpx
from eth_account import Account
from uvicorn_server import serve

from dispatch_setup import registered_charger
from node.outbox import Outbox
from node.uploader import Uploader
from oracle import db, meter_store
from oracle.chain_view import ChainView
from oracle.ingest import Ingestor, IngestSettings
from oracle.ingest_api import create_ingest_app
from protocol.fast_verify import RegistryDomainVerifier
from protocol.meter import MeterBatch


def test_a_backlog_goes_in_one_bulk_upload_and_each_batch_gets_its_own_outcome(devnet, tmp_path):
    charger = registered_charger(devnet)
    web3, manifest = charger.web3, charger.manifest
    engine = db.make_engine(str(tmp_path / "oracle.sqlite"))
    db.init_db(engine)
    view = ChainView(web3, manifest, engine, confirmations=0)
    ingestor = Ingestor(engine, view, RegistryDomainVerifier(manifest.chainId, manifest.address("DeviceRegistry")),
                        IngestSettings(_env_file=None))
    url, server, thread = serve(create_ingest_app(ingestor))
    try:
        outbox = Outbox(tmp_path / "outbox.sqlite")
        chain_id, registry = manifest.chainId, manifest.address("DeviceRegistry")
        base = (charger.now // 900 - 40) * 900
        device = charger.key
        for sequence in range(12):  # a backlog of 12 good batches
            outbox.add_batch(MeterBatch(device.address, base + sequence * 900, 900, (100 + sequence,), sequence)
                             .signed(device.key, chain_id, registry), [url])
        stranger = Account.create()
        outbox.add_batch(MeterBatch(device.address, base + 12 * 900, 900, (1,), 12)
                         .signed(stranger.key, chain_id, registry), [url])          # bad_signature: for good
        outbox.add_batch(MeterBatch(device.address, base + 13 * 900, 900, (9_999,), 13)
                         .signed(device.key, chain_id, registry), [url])            # reading_out_of_range
        future = (charger.now // 900 + 8) * 900
        outbox.add_batch(MeterBatch(device.address, future, 900, (1,), 14)
                         .signed(device.key, chain_id, registry), [url])            # future_interval: retried

        uploader = Uploader(outbox, backoff_base=60)
        assert uploader.pump(url) == 12
        assert uploader.stats.bulk_uploads == 1
        assert (uploader.stats.acked, uploader.stats.rejected, uploader.stats.retried) == (12, 2, 1)
        assert sorted(error.split(":")[0] for _kind, _item, _oracle, error in outbox.rejected()) == [
            "400 bad_signature", "422 reading_out_of_range"]
        assert outbox.depth() == {url: 1}  # the future batch, pending after its back-off
        stored = meter_store.batches_of_device(engine, device.address)
        assert [record.sequence for record in stored] == list(range(12))

        # what the single route says of the same items: the same outcomes
        for sequence, code in ((12, "bad_signature"), (13, "reading_out_of_range")):
            batch = next(b for b in outbox.batches(device.address) if b.sequence == sequence)
            single = httpx.post(f"{url}/v1/meter-batches", json={
                "device": batch.device, "start": batch.start, "intervalSeconds": batch.interval_seconds,
                "readings": list(batch.readings), "sequence": batch.sequence,
                "signature": "0x" + batch.signature.hex()})
            assert single.json()["code"] == code
        outbox.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        engine.dispose()
