"""oracle.settlement: availability is paid on accepted capacity, on top of utilisation, only to units
that delivered something and are not penalised; worked by hand."""

from __future__ import annotations

from oracle.settlement import DeviceInput, RequestInput, SettlementParams, settle_request

FEE, NEGA, USD = "0x" + "fe" * 20, "0x" + "aa" * 20, "0x" + "bb" * 20
OWNER = "0x" + "01" * 20
SITES = ["0x" + f"{i:02x}" * 20 for i in range(20, 24)]
PARAMS = SettlementParams(fee_account=FEE, protocol_token=NEGA, emission_per_kwh=10**18, penalty_per_kwh=10**18)


def site(address: str, watts: int, verified_wh: int, penalised: bool = False, eligible: bool = True) -> DeviceInput:
    return DeviceInput(address, OWNER, watts, (0, 0, 0, 0), eligible, verified_wh=verified_wh, penalised=penalised)


def test_availability_is_paid_on_accepted_capacity_to_units_that_delivered():
    # 4 intervals of 15 min; clearing price 150,000 per kWh, availability 40,000 per kW·h.
    #   site 0: 2 kW accepted -> committed 2000 Wh; verified 1500 Wh
    #           utilisation 1500 * 150000 // 1000 = 225000; availability 2000 * 40000 // 1000 = 80000
    #   site 1: 3 kW, verified 3500 Wh -> clipped to 3000: utilisation 450000 + availability 120000
    #   site 2: 1 kW, penalised (clearly under): verified 100 Wh: utilisation 15000, no availability
    #   site 3: 1 kW, delivered nothing: no pay at all
    request = RequestInput(1, USD, 150_000, 10**12, 4, (
        site(SITES[0], 2_000, 1_500), site(SITES[1], 3_000, 3_500), site(SITES[2], 1_000, 100, penalised=True),
        site(SITES[3], 1_000, 0)), availability_price=40_000)
    result = settle_request(request, PARAMS)
    by_site = {d.device.lower(): d for d in result.devices}
    assert [(by_site[s].payout, by_site[s].availability) for s in SITES] == [
        (305_000, 80_000), (570_000, 120_000), (15_000, 0), (0, 0)]
    assert result.payout == 305_000 + 570_000 + 15_000


def test_without_availability_nothing_changes_and_the_escrow_caps_both():
    units = (site(SITES[0], 2_000, 1_500), site(SITES[1], 3_000, 3_000))
    plain = settle_request(RequestInput(1, USD, 150_000, 10**12, 4, units), PARAMS)
    assert [(d.payout, d.availability) for d in plain.devices] == [(225_000, 0), (450_000, 0)]
    # with availability the gross is 305,000 + 570,000 = 875,000 > an escrow of 700,000: scaled
    capped = settle_request(RequestInput(1, USD, 150_000, 700_000, 4, units, availability_price=40_000), PARAMS)
    assert capped.scaled_to_escrow and capped.payout <= 700_000
    assert [d.payout for d in capped.devices] == [305_000 * 700_000 // 875_000, 570_000 * 700_000 // 875_000]


def test_an_ineligible_unit_earns_no_availability():
    request = RequestInput(1, USD, 150_000, 10**12, 4, (site(SITES[0], 2_000, 2_000, eligible=False),),
                           availability_price=40_000)
    assert settle_request(request, PARAMS).devices[0].payout == 0
