"""oracle.settlement: hand-worked settlements, the escrow cap, the curve, and invariants."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from oracle.settlement import (
    DeviceInput,
    RequestInput,
    SettlementParams,
    curve_factor,
    settle_epoch,
    settle_request,
    validate_curve,
)
from eth_utils import to_checksum_address

from protocol.merkle import RewardsTree

FEE = "0x" + "fe" * 20
NEGA = "0x" + "aa" * 20
USD = "0x" + "bb" * 20
OWNER_A = "0x" + "01" * 20
OWNER_B = "0x" + "02" * 20
DEV = ["0x" + f"{i:02x}" * 20 for i in range(10, 20)]
PARAMS = SettlementParams(fee_account=FEE, protocol_token=NEGA, emission_per_kwh=10**18, penalty_per_kwh=2 * 10**18)


def request(devices, escrow=10**12, price=200_000, intervals=4, request_id=1):
    return RequestInput(request_id, USD, price, escrow, intervals, tuple(devices))


def test_a_device_that_delivers_its_commitment_is_paid_for_it():
    # 4 kW committed for 4 intervals of 15 min: cap = 4000 * 900 // 3600 = 1000 Wh per interval,
    # committed = 4000 Wh. Curtailed 1200, 1000, 900, 1000 -> capped 1000 + 1000 + 900 + 1000 = 3900 Wh.
    # ratio = 3900 * 10000 // 4000 = 9750 bps; identity curve above 50% -> factor 9750;
    # payable = 4000 * 9750 // 10000 = 3900 Wh; payout = 3900 * 200000 // 1000 = 780000 (0.78 mUSD);
    # owner 80% = 624000, fee 156000; emission = 3900 * 1e18 // 1000 = 3.9e18; no penalty.
    result = settle_request(request([DeviceInput(DEV[0], OWNER_A, 4_000, (1_200, 1_000, 900, 1_000))]), PARAMS)
    d = result.devices[0]
    assert (d.committed_wh, d.delivered_wh, d.ratio_bps, d.factor_bps, d.payable_wh) == (4_000, 3_900, 9_750, 9_750,
                                                                                         3_900)
    assert (d.payout, d.owner_payout, d.fee, d.emission, d.penalty) == (780_000, 624_000, 156_000, 39 * 10**17, 0)
    assert (result.payout, result.refund) == (780_000, 10**12 - 780_000)


def test_under_half_delivery_earns_nothing_and_is_penalized():
    # 2 kW for 4 intervals: cap 500 Wh, committed 2000 Wh. Curtailed 300+200+0+400 = 900 Wh -> ratio 4500 bps.
    # factor 0 -> payable 0; penalty = (2000 - 900) * 2e18 // 1000 = 2.2e18.
    d = settle_request(request([DeviceInput(DEV[1], OWNER_A, 2_000, (300, 200, 0, 400))]), PARAMS).devices[0]
    assert (d.ratio_bps, d.factor_bps, d.payout, d.emission, d.penalty) == (4_500, 0, 0, 0, 22 * 10**17)


def test_an_ineligible_device_earns_nothing_and_says_why():
    device = DeviceInput(DEV[2], OWNER_A, 2_000, (500, 500, 500, 500), eligible=False, reasons=("baseline_quality",))
    d = settle_request(request([device]), PARAMS).devices[0]
    assert (d.delivered_wh, d.payout, d.emission, d.penalty, d.eligible) == (2_000, 0, 0, 0, False)
    assert d.reasons == ("baseline_quality",)


def test_payouts_beyond_the_escrow_are_scaled_down_pro_rata():
    # Two devices earn 780000 and 400000 (2000 Wh * 200) = 1180000 in total; escrow 590000 (half).
    # Scaled: 780000 * 590000 // 1180000 = 390000 and 400000 * 590000 // 1180000 = 200000.
    devices = [DeviceInput(DEV[0], OWNER_A, 4_000, (1_200, 1_000, 900, 1_000)),
               DeviceInput(DEV[1], OWNER_B, 2_000, (500, 500, 500, 500))]
    result = settle_request(request(devices, escrow=590_000), PARAMS)
    assert result.scaled_to_escrow
    assert [d.payout for d in result.devices] == [390_000, 200_000]
    assert (result.payout, result.refund) == (590_000, 0)


def test_epoch_builds_the_cumulative_ledger_and_report():
    previous = {(OWNER_A, USD): 1_000, (FEE, USD): 250}
    req = request([DeviceInput(DEV[0], OWNER_A, 4_000, (1_200, 1_000, 900, 1_000)),
                   DeviceInput(DEV[1], OWNER_B, 2_000, (300, 200, 0, 400))])
    epoch = settle_epoch(2, b"\x11" * 32, previous, [req], PARAMS, emission_budget=10**30)
    assert epoch.ledger[(to_checksum_address(OWNER_A), to_checksum_address(USD))] == 1_000 + 624_000
    report = epoch.report
    assert report.epoch == 2 and report.previous_root == b"\x11" * 32
    assert [(p.request_id, p.payout) for p in report.payouts] == [(1, 780_000)]
    assert [(p.account.lower(), p.amount) for p in report.penalties] == [(OWNER_B, 22 * 10**17)]
    assert report.emission == 39 * 10**17
    assert report.rewards_root == RewardsTree(epoch.leaves()).root
    amounts = {(leaf.account.lower(), leaf.token.lower()): leaf.amount for leaf in epoch.leaves()}
    assert amounts == {(OWNER_A, USD): 625_000, (FEE, USD): 250 + 156_000, (OWNER_A, NEGA): 39 * 10**17}


def test_emission_is_scaled_to_the_remaining_budget():
    req = request([DeviceInput(DEV[0], OWNER_A, 4_000, (1_000,) * 4), DeviceInput(DEV[1], OWNER_B, 4_000, (1_000,) * 4)])
    epoch = settle_epoch(1, bytes(32), {}, [req], PARAMS, emission_budget=3 * 10**18)
    # Each device would get 4e18; the budget 3e18 scales each to 4e18 * 3e18 // 8e18 = 1.5e18.
    assert epoch.emission_scaled and epoch.report.emission == 3 * 10**18


def test_the_same_inputs_in_any_order_give_the_same_report():
    devices = [DeviceInput(DEV[i], OWNER_A if i % 2 else OWNER_B, 1_000 + i, (100 * i, 50, 0, 300)) for i in range(6)]
    a = settle_epoch(1, bytes(32), {}, [request(devices), request(devices[:2], request_id=2)], PARAMS, 10**30)
    b = settle_epoch(1, bytes(32), {}, [request(devices[:2][::-1], request_id=2), request(devices[::-1])], PARAMS,
                     10**30)
    assert a.report == b.report and a.report.requests_hash == b.report.requests_hash


def test_curve_interpolates_and_rounds_down():
    curve = ((0, 0), (6_000, 3_000), (7_500, 3_750), (10_000, 10_000))
    validate_curve(curve)
    # between (6000, 3000) and (7500, 3750): 3000 + 750 * 1001 // 1500 = 3000 + 500 = 3500
    assert curve_factor(curve, 7_001) == 3_500
    assert curve_factor(curve, 12_000) == 10_000
    descending = ((0, 10_000), (3, 0))
    # 10000 - 10000 * 1 / 3 = 6666.67 -> floor 6666
    assert curve_factor(descending, 1) == 6_666


@pytest.mark.parametrize("curve, message", [
    (((1, 0),), "start at ratio 0"),
    (((0, 0), (0, 1)), "strictly increasing"),
    (((0, 0), (10, 10_001)), "out of range"),
])
def test_bad_curves_are_rejected(curve, message):
    with pytest.raises(ValueError, match=message):
        SettlementParams(fee_account=FEE, protocol_token=NEGA, curve=curve)


def test_interval_count_mismatch_is_an_error():
    with pytest.raises(ValueError, match="intervals"):
        settle_request(request([DeviceInput(DEV[0], OWNER_A, 1_000, (1, 2))]), PARAMS)


device_inputs = st.lists(
    st.builds(lambda i, w, c, e, o: DeviceInput(DEV[i], [OWNER_A, OWNER_B][o], w, tuple(c), eligible=e),
              st.integers(0, 9), st.integers(1, 20_000), st.lists(st.integers(0, 10_000), min_size=4, max_size=4),
              st.booleans(), st.integers(0, 1)),
    min_size=1, max_size=10, unique_by=lambda d: d.device,
)


@settings(max_examples=200, deadline=None)
@given(devices=device_inputs, escrow=st.integers(0, 10**9), price=st.integers(1, 10**9))
def test_a_request_never_pays_more_than_its_escrow(devices, escrow, price):
    result = settle_request(request(devices, escrow=escrow, price=price), PARAMS)
    assert 0 <= result.payout <= escrow and result.payout + result.refund == escrow
    for d in result.devices:
        assert d.delivered_wh <= d.committed_wh and d.payable_wh <= d.committed_wh
        assert d.owner_payout + d.fee == d.payout
        assert d.payout == 0 or d.eligible
