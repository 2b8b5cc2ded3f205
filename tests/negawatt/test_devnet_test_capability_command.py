"""`negawatt devnet test-capability` on a real anvil reached through network.json: the test is a
request of the devnet's test budget account, of the market's minimum duration, on the interval grid
past the gate lead, and every role reads it as a capability test; a deployment without the test
account is refused with one line and nothing sent."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from negawatt.devnet.capability import NOMINAL_TARGET_W, TESTER, plan_window
from negawatt.devnet.cli import devnet_app
from protocol.capability import CapabilityRules
from protocol.network_profile import NetworkProfile, write_profile


def test_the_window_is_on_the_grid_past_the_gate_lead():
    assert plan_window(now=10_000, gate_lead=900, min_duration=900, interval=900) == (11_700, 12_600)
    assert plan_window(now=9_840, gate_lead=900, min_duration=900, interval=900, margin=60) == (10_800, 11_700)


def _run_dir(net, tmp_path, name):
    folder = tmp_path / name
    folder.mkdir()
    write_profile(folder, NetworkProfile(chain_id=net.web3().eth.chain_id, rpc_url=net.rpc_url,
                                         manifest=net.manifest_path, interval_seconds=900))
    return folder


def test_a_test_is_opened_by_the_test_account(devnet_factory, tmp_path):
    net = devnet_factory({"min_duration": 900, "gate_lead_seconds": 600, "holdout_bps": 5_000,
                          "capability_tester": TESTER, "capability_test_bps": 2_500})
    run = _run_dir(net, tmp_path, "run")
    answer = CliRunner().invoke(devnet_app, ["test-capability", "--run-dir", str(run), "--zone", "3",
                                             "--price", "0.3", "--budget", "2", "--json"])
    assert answer.exit_code == 0, answer.output
    opened = json.loads(answer.output)
    web3, manifest = net.web3(), net.manifest()
    now = web3.eth.get_block("latest")["timestamp"]
    assert opened["start"] % 900 == 0 and opened["end"] - opened["start"] == 900
    assert opened["gateClosure"] == opened["start"] - 600 and opened["gateClosure"] > now - 5
    assert (opened["zone"], opened["testBps"], opened["pricePerKWh"], opened["budget"]) == (3, 2_500, "300000",
                                                                                             "2000000")
    market = manifest.contract(web3, "FlexMarket")
    request = market.functions.getRequest(opened["requestId"]).call()
    assert TESTER in request  # the buyer of the request is the test account
    assert NOMINAL_TARGET_W in request
    assert CapabilityRules.from_parameters(manifest.parameters).is_test(TESTER)


def test_a_devnet_without_a_test_account_is_refused(devnet_factory, tmp_path):
    net = devnet_factory({"min_duration": 900})
    run = _run_dir(net, tmp_path, "plain")
    answer = CliRunner().invoke(devnet_app, ["test-capability", "--run-dir", str(run)])
    assert answer.exit_code != 0 and "runs no capability tests" in answer.output
    market = net.manifest().contract(net.web3(), "FlexMarket")
    assert market.functions.requestCount().call() == 0  # nothing sent
