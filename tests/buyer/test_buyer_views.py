"""The status verdict from the chain's record and the API's answer (pure: the views' arithmetic and
wording, for states a short test chain does not reach, such as a settled request with its interval)."""

from __future__ import annotations

from buyer.api_client import ApiRequest
from buyer.chain_view import ChainRequest
from buyer.views import StatusView, status_json, verdict
from protocol.requests import PostedAllocation
from protocol.statuses import RequestStatus

BUYER = "0x" + "11" * 20
TOKEN = "0x" + "22" * 20


def settled_view() -> StatusView:
    request = ChainRequest(9, BUYER, 7_200, 10_800, RequestStatus.SETTLED, True, TOKEN, 4, 5_000, 300_000,
                           escrow=0, deposited=2_000_000, paid=1_100_000)
    api = ApiRequest.model_validate({
        "id": 9, "buyer": BUYER, "zone": 4, "start": 7_200, "end": 10_800, "targetW": 5_000, "pricePerKWh": "300000",
        "paymentToken": TOKEN, "maxBudget": "2000000", "status": "settled", "payout": "1100000", "refund": "900000",
        "acceptedW": 5_500, "clearingPrice": "250000", "deliveredWh": 4_400, "unknownField": [1, 2],
        "verification": {"estimatedWh": 4_600, "ci95Wh": [2_100, 7_100], "rule": "portfolio", "sites": []}})
    return StatusView(request, PostedAllocation(b"\x01" * 32, 5_500, 250_000), api, None, 6, "mUSD")


def test_a_settled_request_verdict_first():
    assert verdict(settled_view()) == ("request 9 (settled): requested 5 kW, accepted 5.5 kW at 0.25 mUSD/kWh, "
                                       "delivered 4.4 kW (95 % CI 2.1–7.1 kW), paid 1.1 mUSD, refunded 0.9 mUSD")


def test_the_json_carries_the_same_figures():
    body = status_json(settled_view())
    assert (body["deliveredW"], body["ci95W"], body["paid"], body["refunded"]) == (4_400, [2_100, 7_100],
                                                                                 "1100000", "900000")
    assert body["verdict"].startswith("request 9 (settled)")


def test_a_settling_request_shows_its_pending_payout():
    view = settled_view()
    view.request = ChainRequest(9, BUYER, 7_200, 10_800, RequestStatus.SETTLING, True, TOKEN, 4, 5_000, 300_000,
                                escrow=1_375_000, deposited=2_000_000, paid=0)
    text = verdict(view)
    assert "paid 0 mUSD (1.1 mUSD pending in a report), refunded 0 mUSD" in text


def test_an_unverified_delivery_is_not_shown_as_zero():
    view = settled_view()
    view.api = ApiRequest.model_validate({
        **view.api.model_dump(), "payout": "0", "refund": "2000000", "deliveredWh": 0,
        "verification": {"estimatedWh": 0, "ci95Wh": None, "rule": "none", "fallbackReason":
                         "portfolio_baseline_quality", "sites": []}})
    text = verdict(view)
    assert "delivered: not verified (portfolio_baseline_quality), so not paid" in text
    assert "delivered 0 kW" not in text and "CI 0" not in text
