"""The devnet's keeper and `negawatt devnet warp` on a real anvil: the keeper mines at the scaled clock
(driven here with its own wall clock, so nothing depends on how fast the machine is), never goes
back, never undoes a warp; a transaction is still mined at once; warp refuses the past and bounds
its jumps; the CLI reaches the devnet through its network.json."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from negawatt.devnet.cli import devnet_app
from negawatt.devnet.keeper import Keeper, KeeperError, check_options, latest_timestamp
from negawatt.devnet.warp import MAX_WARP_SECONDS, WarpError, parse_duration, parse_instant, plan, warp
from negawatt.localchain import ANVIL_KEYS, free_port, start_anvil
from protocol.chain import connect
from protocol.network_profile import NetworkProfile, write_profile


class Wall:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def anvil():
    port = free_port()
    process = start_anvil(port)
    try:
        yield connect(f"http://127.0.0.1:{port}")
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_keeper_mines_at_the_scaled_clock(anvil):
    wall = Wall()
    keeper = Keeper(anvil, time_scale=30, block_time=1, wall=wall)
    first = keeper.tick()  # anchors on the chain's time
    height = anvil.eth.block_number
    for k in range(1, 4):
        wall.now += 1
        assert keeper.tick() == first + 30 * k
        assert latest_timestamp(anvil) == first + 30 * k
    assert anvil.eth.block_number == height + 3  # one block per tick
    wall.now += 0.5
    assert keeper.tick() == first + 105


def test_a_warp_is_never_undone_and_the_clock_runs_on_from_it(anvil):
    wall = Wall()
    keeper = Keeper(anvil, time_scale=60, block_time=1, wall=wall)
    start = keeper.tick()
    warped = warp(anvil, start + 7_200)
    assert warped == start + 7_200
    wall.now += 1  # the scaled clock says start + 60, the chain is two hours on
    after = keeper.tick()
    assert warped <= after <= warped + 5  # anvil's own clock, not back to start + 60
    wall.now += 1
    assert keeper.tick() == after + 60


def test_a_transaction_is_still_mined_at_once_between_the_keepers_blocks(anvil):
    from eth_account import Account

    wall = Wall()
    keeper = Keeper(anvil, time_scale=30, block_time=1, wall=wall)
    start = keeper.tick()
    sender = Account.from_key(ANVIL_KEYS[0])
    tx = sender.sign_transaction({"to": "0x" + "22" * 20, "value": 1, "gas": 21_000, "gasPrice": anvil.eth.gas_price,
                                  "chainId": anvil.eth.chain_id, "nonce": anvil.eth.get_transaction_count(sender.address)})
    receipt = anvil.eth.wait_for_transaction_receipt(anvil.eth.send_raw_transaction(tx.raw_transaction), timeout=10)
    assert receipt["status"] == 1  # automining is on: no block time to wait for
    wall.now += 1
    assert keeper.tick() == start + 30


def test_the_keeper_thread_mines_by_itself_and_stops(anvil):
    from waiting import wait_for  # tests/waiting.py

    keeper = Keeper(anvil, time_scale=100, block_time=0.2).start()
    try:
        before = latest_timestamp(anvil)
        wait_for(lambda: keeper.blocks >= 3 and latest_timestamp(anvil) >= before + 100, 30, "three blocks")
    finally:
        keeper.stop()
    mined = keeper.blocks
    stamps = [anvil.eth.get_block(n)["timestamp"] for n in range(1, anvil.eth.block_number + 1)]
    assert stamps == sorted(stamps)
    assert keeper.blocks == mined  # stopped


@pytest.mark.parametrize("scale, block, message", [
    (0.5, 1, "--time-scale 0.5 is out of range"), (5_000, 1, "--time-scale 5000 is out of range"),
    (30, 0, "--block-time 0 is out of range"), (30, 120, "--block-time 120 is out of range"),
])
def test_keeper_options_are_bounded(scale, block, message):
    with pytest.raises(KeeperError, match=message):
        check_options(scale, block)


def test_durations_and_instants_parse_exactly():
    assert parse_duration("2h") == 7_200
    assert parse_duration("90m") == 5_400
    assert parse_duration("1h30m") == 5_400
    assert parse_duration("1d2h3m4s") == 93_784
    assert parse_duration("3600") == 3_600
    assert parse_instant("2026-12-02T18:00Z") == 1_796_234_400
    assert parse_instant("2026-12-02T19:00+01:00") == 1_796_234_400
    for bad in ("", "2x", "-5m", "h", "1.5h", "2h 30m", "9" * 80):
        with pytest.raises(WarpError, match="--by"):
            parse_duration(bad)
    with pytest.raises(WarpError, match="has no timezone"):
        parse_instant("2026-12-02T18:00")
    with pytest.raises(WarpError, match="neither unix seconds nor an ISO 8601 time"):
        parse_instant("tomorrow")


def test_a_warp_backwards_zero_or_too_far_is_refused():
    with pytest.raises(WarpError, match="only moves forward"):
        plan(1_000_000, to=999_999)
    with pytest.raises(WarpError, match="only moves forward"):
        plan(1_000_000, by=0)
    with pytest.raises(WarpError, match="at most 7 days at once"):
        plan(1_000_000, by=MAX_WARP_SECONDS + 1)
    with pytest.raises(WarpError, match="exactly one of"):
        plan(1_000_000, to=2_000_000, by=60)
    assert plan(1_000_000, by=MAX_WARP_SECONDS) == 1_000_000 + MAX_WARP_SECONDS


def test_the_warp_command_moves_a_running_devnet(devnet, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    web3 = devnet.web3()
    write_profile(run, NetworkProfile(chain_id=web3.eth.chain_id, rpc_url=devnet.rpc_url,
                                      manifest=devnet.manifest_path))
    before = latest_timestamp(web3)
    moved = CliRunner().invoke(devnet_app, ["warp", "--run-dir", str(run), "--by", "2h"])
    assert moved.exit_code == 0, moved.output
    assert before + 7_200 <= latest_timestamp(web3) <= before + 7_202
    assert "(+7200 s)" in moved.output or "(+7201 s)" in moved.output

    back = CliRunner().invoke(devnet_app, ["warp", "--run-dir", str(run), "--to", str(before)])
    assert back.exit_code == 2 and "only moves forward" in back.stderr, back.output
    none = CliRunner().invoke(devnet_app, ["warp", "--run-dir", str(run)])
    assert none.exit_code == 2 and "give one of --to ISO or --by DURATION" in none.stderr
    nowhere = CliRunner().invoke(devnet_app, ["warp", "--run-dir", str(tmp_path), "--by", "1h"])
    assert nowhere.exit_code == 2 and "holds no network.json" in nowhere.stderr
    assert "Traceback" not in back.output + none.output + nowhere.output
