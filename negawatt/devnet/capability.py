"""`negawatt devnet test-capability`: open a capability test (proof of flexibility) on a running devnet.

A devnet names anvil's last account (TESTER_KEY) as the protocol's test budget account in its
deployment (`capability_tester`), so the requests it opens are capability tests (protocol.capability).
This command is how a devnet runs one "occasionally": by hand, or from a script, never inside
`make demo` (whose one event and time budget stay as they are).

The rule: the test is a FlexMarket request in `zone` of the market's minimum duration
(FlexMarket.minDuration, one metering interval on a devnet), starting at the first whole interval
at least the gate lead plus `margin` seconds after the chain's clock, at `price` per kWh, escrowing
`budget` (the protocol's budget for this test; what is not paid is refunded to the test account).
Its target is nominal (a test is not cleared). The budget is minted on the devnet's MockStablecoin
for the test account first, then the request is opened by the buyer tooling (permit, openRequest).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account

from negawatt.localchain import ANVIL_KEYS

TESTER_KEY = ANVIL_KEYS[9]  # anvil's last account: not the admin (0), the buyer (1) or an oracle (2..8)
TESTER = Account.from_key(TESTER_KEY).address
NOMINAL_TARGET_W = 1_000  # a test is not cleared; its target is only displayed
MARGIN_SECONDS = 60


class CapabilityTestError(ValueError):
    """The test could not be opened; the message says why (nothing was sent, or what was)."""


@dataclass(frozen=True)
class OpenedTest:
    """A capability test opened on the devnet."""

    request_id: int
    zone: int
    start: int
    end: int
    gate_closure: int
    price_per_kwh: int
    budget: int
    test_bps: int


def plan_window(now: int, gate_lead: int, min_duration: int, interval: int, margin: int = MARGIN_SECONDS
                ) -> tuple[int, int]:
    """[start, end) of the next test (module rule): start on the interval grid, at least
    gate_lead + margin after `now`; end = start + the market's minimum duration."""
    if interval <= 0 or min_duration <= 0:
        raise CapabilityTestError("the interval and the market's minimum duration must be positive")
    earliest = now + gate_lead + margin
    start = -(-earliest // interval) * interval
    return start, start + min_duration


def open_test(web3: Any, manifest: Any, zone: int, price_per_kwh: int, budget: int, interval: int) -> OpenedTest:
    """Mint the budget for the test account and open the test (module rule)."""
    from buyer.checks import BuyerError
    from buyer.market import open_request
    from protocol.capability import CapabilityRules
    from protocol.chain import Transactor

    rules = CapabilityRules.from_parameters(manifest.parameters)
    if not rules.is_test(TESTER):
        raise CapabilityTestError("this devnet's deployment names no capability test account "
                                  f"(parameters.capability_tester is {manifest.parameters.get('capability_tester')!r},"
                                  f" not {TESTER}): it runs no capability tests")
    market = manifest.contract(web3, "FlexMarket")
    usd = manifest.contract(web3, "MockStablecoin")
    now = int(web3.eth.get_block("latest")["timestamp"])
    start, end = plan_window(now, int(market.functions.gateLeadSeconds().call()),
                             int(market.functions.minDuration().call()), interval)
    abis = [entry.abi for entry in manifest.contracts.values()]
    tester = Transactor(web3, TESTER_KEY, abis=abis)
    tester.send(usd.functions.mint(TESTER, budget))
    try:
        request_id = open_request(web3, manifest, bytes.fromhex(TESTER_KEY.removeprefix("0x")), zone, start, end,
                                  NOMINAL_TARGET_W, price_per_kwh, usd.address, budget)
    except BuyerError as error:
        raise CapabilityTestError(f"the test was not opened: {error}") from None
    gate = int(market.functions.gateLeadSeconds().call())
    return OpenedTest(request_id, zone, start, end, start - gate, price_per_kwh, budget, rules.test_bps)
