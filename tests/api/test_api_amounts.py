"""Issue 15 #4: one amount type. Every uint128/uint256 argument of an event the API indexes is either
a token amount (api.amounts.AMOUNT_ARGS: served as a decimal string) or an identifier; the table
names only arguments the contracts really have."""

from __future__ import annotations

import json

from api.amounts import AMOUNT_ARGS, IDENTIFIER_ARGS, NESTED_AMOUNTS, amount_args
from negawatt.localchain import REPO
from protocol.manifest import REQUIRED_CONTRACTS

WIDE = {"uint128", "uint256", "int256"}
NOT_AMOUNTS = {("OracleHub", "OracleAdded"): {"index"}}  # the oracle's slot in the set


def _events() -> dict[tuple[str, str], list[dict]]:
    types = json.loads((REPO / ".build" / "__local__.json").read_text())["contractTypes"]
    return {(name, item["name"]): item["inputs"] for name in REQUIRED_CONTRACTS for item in types[name]["abi"]
            if item.get("type") == "event"}


def test_every_wide_integer_argument_is_an_amount_or_an_identifier():
    events = _events()
    unlisted = []
    for key, inputs in events.items():
        for arg in inputs:
            if arg["type"] in WIDE and arg["name"] not in AMOUNT_ARGS.get(key, ()) \
                    and arg["name"] not in IDENTIFIER_ARGS | NOT_AMOUNTS.get(key, set()):
                unlisted.append(f"{key[0]}.{key[1]}.{arg['name']}")
            for component in arg.get("components", ()):
                if component["type"] in WIDE and component["name"] not in NESTED_AMOUNTS.get(key, {}).get(
                        arg["name"], ()) and component["name"] not in IDENTIFIER_ARGS:
                    unlisted.append(f"{key[0]}.{key[1]}.{arg['name']}.{component['name']}")
    assert unlisted == []
    for key, names in AMOUNT_ARGS.items():
        assert key in events, key
        assert names <= {arg["name"] for arg in events[key]}, key


def test_amount_args_are_decimal_strings_and_the_rest_is_kept():
    args = {"requestId": 4, "payout": 12_000, "refund": "100000000000000000000", "recipient": "0x" + "00" * 20}
    assert amount_args("FlexMarket", "RequestSettled", args) == {
        "requestId": 4, "payout": "12000", "refund": "100000000000000000000", "recipient": "0x" + "00" * 20}
    submitted = {"epoch": 2, "report": {"epoch": 2, "emission": 7}, "penalties": [{"account": "0x1", "amount": 3}]}
    assert amount_args("OracleHub", "ReportSubmitted", submitted) == {
        "epoch": 2, "report": {"epoch": 2, "emission": "7"}, "penalties": [{"account": "0x1", "amount": "3"}]}
    assert amount_args("DeviceRegistry", "DeviceRegistered", {"capacityW": 3_000}) == {"capacityW": 3_000}
