"""The signed day-ahead forecast (protocol.forecast): its offers hash is the documented ABI encoding,
it survives the wire and still verifies, any tampering changes its signer, and the codec refuses
what breaks the bounds (49 hours, 3 tranches, a negative price...) with an error naming the field."""

from __future__ import annotations

import json

import pytest
from eth_account import Account
from eth_utils import keccak
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from protocol.forecast import (
    MAX_FORECAST_HOURS,
    FlexForecast,
    Tranche,
    decode_forecast,
    encode_forecast,
)

KEY = "0x" + "4b" * 32
OTHER_KEY = "0x" + "4c" * 32
REGISTRY = "0x" + "5f" * 20
CHAIN = 31337
SITE = Account.from_key(KEY).address
DAY = 1_780_000_000 // 86_400 * 86_400


def forecast(hours=((Tranche(3_000, 100_000), Tranche(1_500, 250_000)), (), (Tranche(2_000, 90_000),)),
             sequence: int = 7, zone: int = 4) -> FlexForecast:
    return FlexForecast(SITE, zone, DAY, tuple(hours), sequence).signed(KEY, CHAIN, REGISTRY)


def word(value: int) -> bytes:
    return value.to_bytes(32, "big")


def test_the_offers_hash_is_the_abi_encoding_of_the_hours():
    # abi.encode((uint64,uint128)[][]) of [[(5, 7)], []], worked by hand:
    #   offset of the outer array (0x20) | its length 2 | offsets of its two elements relative to
    #   the start of its contents (0x40, then 0x40 + 3 words = 0xa0) | element 0: length 1, (5, 7) |
    #   element 1: length 0
    encoded = (word(0x20) + word(2) + word(0x40) + word(0xA0) + word(1) + word(5) + word(7) + word(0))
    unsigned = FlexForecast(SITE, 1, DAY, ((Tranche(5, 7),), ()), 0)
    assert unsigned.offers_hash() == keccak(encoded)
    # the hour boundary is part of the hash: the same tranche in the second hour hashes differently
    assert FlexForecast(SITE, 1, DAY, ((), (Tranche(5, 7),)), 0).offers_hash() != keccak(encoded)
    assert unsigned.message()["hours"] == 2 and unsigned.end == DAY + 2 * 3_600


def test_a_signed_forecast_survives_the_wire_and_verifies():
    signed = forecast()
    text = json.dumps(encode_forecast(signed))
    decoded = decode_forecast(text)
    assert decoded == signed and decoded.signature == signed.signature
    assert decoded.signer(CHAIN, REGISTRY) == SITE
    assert decode_forecast(json.loads(text)) == signed


@settings(max_examples=25, deadline=None)
@given(hours=st.lists(st.lists(st.tuples(st.integers(1, 2**32 - 1), st.integers(0, 2**128 - 1)), max_size=2,
                               unique_by=lambda t: t[1]).map(lambda h: tuple(Tranche(w, p) for w, p in
                                                                           sorted(h, key=lambda t: t[1]))),
                      min_size=1, max_size=MAX_FORECAST_HOURS),
       sequence=st.integers(0, 2**63 - 1), zone=st.integers(0, 2**32 - 1))
def test_any_forecast_within_the_bounds_round_trips(hours, sequence, zone):
    signed = forecast(hours, sequence, zone)
    decoded = decode_forecast(json.dumps(encode_forecast(signed)))
    assert decoded == signed and decoded.signer(CHAIN, REGISTRY) == SITE


@pytest.mark.parametrize("tamper", [
    lambda body: body["hours"][0][0].update(watts=3_001),  # one watt more
    lambda body: body["hours"][2][0].update(price=89_999),  # cheaper
    lambda body: body["hours"].insert(0, body["hours"].pop(1)),  # hours shifted
    lambda body: body.update(zone=5),
    lambda body: body.update(start=DAY + 3_600),
    lambda body: body.update(sequence=8),
])
def test_tampering_changes_the_signer(tamper):
    body = encode_forecast(forecast())
    tamper(body)
    assert decode_forecast(body).signer(CHAIN, REGISTRY) != SITE


def test_another_domain_or_key_does_not_recover_the_site():
    signed = forecast()
    assert signed.signer(CHAIN + 1, REGISTRY) != SITE
    assert signed.signer(CHAIN, "0x" + "60" * 20) != SITE
    assert FlexForecast(SITE, 4, DAY, signed.hours, 7).signed(OTHER_KEY, CHAIN, REGISTRY).signer(CHAIN, REGISTRY) \
        == Account.from_key(OTHER_KEY).address


def _refused(body: dict, field: str, says: str) -> None:
    with pytest.raises(ValidationError) as error:
        decode_forecast(body)
    text = str(error.value)
    assert field in text and says in text, text


def test_the_bounds_are_refused_with_what_was_wrong():
    good = encode_forecast(forecast())
    tranche = {"watts": 100, "price": 1}
    _refused({**good, "hours": [[tranche]] * 49}, "hours", "at most 48 items")
    _refused({**good, "hours": [[tranche, {"watts": 1, "price": 2}, {"watts": 1, "price": 3}]]}, "hours.0",
             "at most 2 items")
    _refused({**good, "hours": [[{"watts": 100, "price": -1}]]}, "hours.0.0.price", "greater than or equal to 0")
    _refused({**good, "hours": [[{"watts": 0, "price": 1}]]}, "hours.0.0.watts", "greater than or equal to 1")
    _refused({**good, "hours": [[{"watts": 2**32, "price": 1}]]}, "hours.0.0.watts", "less than or equal to")
    _refused({**good, "hours": []}, "hours", "at least 1 item")
    _refused({**good, "hours": [[{"watts": 1, "price": 5}, {"watts": 1, "price": 5}]]}, "", "must ascend strictly")
    _refused({**good, "start": DAY + 60}, "", "not a whole hour")
    _refused({**good, "sequence": "8"}, "sequence", "valid integer")
    _refused({**good, "zone": 4.0}, "zone", "valid integer")
    _refused({**good, "hours": [[{"watts": True, "price": 1}]]}, "watts", "valid integer")
    _refused({**good, "note": "hi"}, "note", "Extra inputs are not permitted")
    _refused({**good, "hours": [[{**tranche, "kind": "x"}]]}, "kind", "Extra inputs are not permitted")
    _refused({**good, "site": SITE.lower()[:-1] + "x"}, "site", "20-byte hex address")
    mixed = SITE[:2] + (SITE[2:].swapcase() if SITE[2:] != SITE[2:].swapcase() else SITE[2:])
    if mixed[2:] not in (mixed[2:].lower(), mixed[2:].upper()):
        _refused({**good, "site": mixed}, "site", "EIP-55")
    _refused({**good, "signature": "0xzz"}, "signature", "hex bytes")
    assert decode_forecast({**good, "site": SITE.lower()}).site == SITE  # all lower case is fine, checksummed
