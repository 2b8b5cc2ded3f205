"""protocol.clearing with availability prices (Electron-style): offers ranked on utilisation +
availability, each uniform price the highest of its component among the accepted offers, offers
above either ceiling passed over. Cases worked by hand."""

from __future__ import annotations

import pytest
from eth_utils import to_checksum_address

from protocol.clearing import Offer, clear


def addr(n: int) -> str:
    return to_checksum_address(n.to_bytes(20, "big"))


def offer(n: int, price: int, availability: int, watts: int, tranche: int = 0) -> Offer:
    return Offer(site=addr(n), device=addr(n), tranche=tranche, watts=watts, price=price,
                 availability_price=availability)


def nobody(_site: str) -> bool:
    return False


def test_merit_order_is_on_the_sum_and_each_price_is_the_highest_accepted():
    # target 5,000 W, margin 0 -> cap 5,000 W; utilisation ceiling 300, availability ceiling 100.
    #   device 1: 100 + 90 = 190   (cheapest on the sum although its availability is the dearest)
    #   device 2: 150 + 10 = 160   <- first
    #   device 3: 120 + 80 = 200   third; only 1,000 of its 3,000 W fit (partial marginal offer)
    #   device 4: 50 + 200 = 250   availability above the ceiling: passed over
    #   device 5: 310 + 0  = 310   utilisation above the ceiling: passed over
    offers = [offer(1, 100, 90, 2_000), offer(2, 150, 10, 2_000), offer(3, 120, 80, 3_000),
              offer(4, 50, 200, 4_000), offer(5, 310, 0, 4_000)]
    allocation = clear(1, 5_000, 300, offers, {}, 0, nobody, availability_ceiling=100)
    assert {a.device: a.watts for a in allocation.accepted} == {addr(2): 2_000, addr(1): 2_000, addr(3): 1_000}
    # uniform prices: the highest utilisation price accepted (150, device 2) and the highest
    # availability price accepted (90, device 1): every accepted offer gets at least its ask on both
    assert (allocation.clearing_price, allocation.availability_price) == (150, 90)
    assert allocation.accepted_w == 5_000


def test_a_request_without_availability_accepts_only_offers_asking_none():
    offers = [offer(1, 100, 0, 2_000), offer(2, 90, 5, 2_000)]
    allocation = clear(1, 5_000, 300, offers, {}, 0, nobody)  # availability ceiling 0
    assert [a.device for a in allocation.accepted] == [addr(1)]
    assert (allocation.clearing_price, allocation.availability_price) == (100, 0)


def test_without_availability_the_rule_is_the_utilisation_merit_order():
    # all availability prices 0: the cheapest first, the marginal one sets the price (as before)
    offers = [offer(1, 200, 0, 3_000), offer(2, 100, 0, 3_000), offer(3, 150, 0, 3_000)]
    allocation = clear(1, 5_000, 300, offers, {}, 0, nobody)
    assert {a.device: a.watts for a in allocation.accepted} == {addr(2): 3_000, addr(3): 2_000}
    assert allocation.clearing_price == 150 and allocation.availability_price == 0


def test_control_sites_must_be_in_the_money_on_both_prices():
    # site 9 is held out; its offer (utilisation 100 <= 150, availability 95 > 90) would not have been
    # accepted at the clearing prices, so it is not a control site; site 8's (100, 50) is.
    offers = [offer(1, 100, 90, 2_000), offer(2, 150, 10, 2_000), offer(8, 100, 50, 1_000),
              offer(9, 100, 95, 1_000)]
    held = {addr(8), addr(9)}
    allocation = clear(1, 4_000, 300, offers, {}, 0, lambda site: site in held, availability_ceiling=100)
    assert (allocation.clearing_price, allocation.availability_price) == (150, 90)
    assert allocation.control_sites == (addr(8),)


def test_a_negative_availability_price_is_refused():
    with pytest.raises(ValueError, match="availability price must be an integer >= 0"):
        clear(1, 5_000, 300, [offer(1, 100, -1, 2_000)], {}, 0, nobody, availability_ceiling=100)
