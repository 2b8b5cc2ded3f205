"""Sites and the market's holdout rules as the oracle reads them from a real chain: a site meter and
the devices at it (ownership follows the site), the rules snapshotted with each request, and the
ingest's gate: no commitment from gate closure on, and never one from a site meter."""

from __future__ import annotations

import pytest

from oracle import db
from oracle.chain_view import ChainView
from oracle.ingest import IngestSettings, Ingestor, Rejected
from protocol.chain import Transactor
from protocol.fast_verify import RegistryDomainVerifier
from protocol.kinds import DeviceKind

GATE_LEAD = 600


@pytest.fixture
def ruled(devnet_factory):
    return devnet_factory({"challenge_window": 60, "min_duration": 60, "min_oracle_bond": 10**18,
                           "holdout_bps": 2_000, "gate_lead_seconds": GATE_LEAD})


@pytest.fixture
def ops(ruled, chain_ops_of):
    return chain_ops_of(ruled)


def view_of(ops, tmp_path) -> ChainView:
    engine = db.make_engine(str(tmp_path / "view.sqlite"))
    db.init_db(engine)
    return ChainView(ops.web3, ops.manifest, engine)


def test_sites_their_devices_and_the_rules_follow_the_chain(ops, tmp_path):
    site = ops.register_site(zone=4)
    heater = ops.register_at_site(site.address, capacity_w=3_000, kind=4)
    view = view_of(ops, tmp_path)
    view.sync()
    meter, device = view.device(site.address), view.device(heater.address)
    assert (meter.kind, meter.site, meter.settlement_unit) == (int(DeviceKind.SITE_METER), None, site.address)
    assert (device.site, device.zone, device.owner, device.settlement_unit) == (
        site.address, 4, ops.owner.address, site.address)
    assert view.devices_at(site.address) == [heater.address]

    buyer = Transactor(ops.web3, ops.devnet.keys[3], abis=[e.abi for e in ops.manifest.contracts.values()])
    ops.owner.send(ops.registry.functions.transfer(site.address, buyer.address))
    buyer.send(ops.registry.functions.acceptTransfer(site.address))  # the house is sold with its heater
    view.sync()
    assert view.device(site.address).owner == view.device(heater.address).owner == buyer.address

    request_id = ops.open_request(zone=4, start_in=3_600)
    request = view.request(request_id)
    assert (request.holdout_bps, request.gate_time) == (2_000, request.start - GATE_LEAD)


def test_commitments_close_at_the_gate_and_a_site_meter_never_commits(ops, tmp_path):
    site = ops.register_site(zone=4)
    heater = ops.register_at_site(site.address, capacity_w=3_000, kind=4)
    engine = db.make_engine(str(tmp_path / "ingest.sqlite"))
    db.init_db(engine)
    view = ChainView(ops.web3, ops.manifest, engine)
    ingest = Ingestor(engine, view, RegistryDomainVerifier(ops.chain_id, ops.registry.address),
                      IngestSettings(_env_file=None))
    request_id = ops.open_request(zone=4, start_in=3_600)
    request = view.request(request_id)
    with pytest.raises(Rejected) as refused:
        ingest.accept_commitment(ops.commitment(site, request_id, 1_000), request.gate_time - 60)
    assert refused.value.code == "not_dispatchable"
    with pytest.raises(Rejected) as late:
        ingest.accept_commitment(ops.commitment(heater, request_id, 1_000), request.gate_time)
    assert late.value.code == "gate_closed" and str(request.gate_time) in late.value.detail
    assert db.commitments_of_request(engine, request_id) == []  # nothing stored
    ack = ingest.accept_commitment(ops.commitment(heater, request_id, 1_000), request.gate_time - 1)
    assert ack.body["status"] == "accepted"
