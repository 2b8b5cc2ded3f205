"""`negawatt devnet fund`: the devnet's faucets, for gas money, the protocol token and the stablecoin.

ETH is added to the address's balance with anvil's `anvil_setBalance` (no sender needed); NEGA is
minted by the devnet's admin (anvil's first account, which `devnet up` grants MINTER_ROLE), within
the token's supply cap; mUSD is minted on the MockStablecoin (anyone may mint it on a devnet).

The rule: amounts are given in token units and converted exactly with the token's decimals (more
decimals than the token has are refused, never rounded); each is above 0 and at most its
`LIMITS` entry; the address must be a 20-byte hex address (a wrong checksum is refused). Every
refusal is a FaucetError naming what was wrong, before anything is sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from eth_utils import is_checksum_address, to_checksum_address

from negawatt.localchain import ANVIL_KEYS
from protocol.units import format_units

ETH_DECIMALS = 18
# the most one call funds, in token units: plenty for a devnet, small enough to catch a typo
LIMITS = {"ETH": 1_000_000, "NEGA": 1_000_000, "mUSD": 1_000_000_000}
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
DEFAULTS = {"ETH": "10", "NEGA": "100", "mUSD": "1000"}  # what `fund ADDRESS` gives with no amount flag


class FaucetError(ValueError):
    """A funding was refused; the message says what was wrong (nothing was sent)."""


@dataclass(frozen=True)
class Grant:
    """One token given: its symbol, decimals, the amount (base units) and the balance after it."""

    symbol: str
    decimals: int
    amount: int
    balance: int

    def line(self) -> str:
        """"+10 ETH (balance 10 ETH)"."""
        return (f"+{format_units(self.amount, self.decimals, self.symbol)} "
                f"(balance {format_units(self.balance, self.decimals, self.symbol)})")


def check_address(text: str) -> str:
    """The checksummed address of `text`; refuses anything but 0x and 40 hex digits, and a mixed-case
    address whose EIP-55 checksum is wrong (a typo)."""
    text = (text or "").strip()
    if not _ADDRESS.fullmatch(text):
        raise FaucetError(f"{text[:60]!r} is not an address (0x and 40 hex digits)")
    digits = text[2:]
    if digits != digits.lower() and digits != digits.upper() and not is_checksum_address(text):
        raise FaucetError(f"{text} has a wrong checksum (mixed case that is not EIP-55): check it for a typo")
    return to_checksum_address(text.lower())


def to_base_units(text: str, decimals: int, symbol: str) -> int:
    """`text` token units as base units, exactly; above 0, at most LIMITS[symbol], and with no more
    decimals than the token has."""
    from buyer.checks import BuyerError
    from buyer.checks import to_base_units as exact

    flag = f"--{symbol.lower()}"
    try:
        amount = exact(text, decimals, f"{flag}")
    except BuyerError as error:
        raise FaucetError(str(error)) from None
    if amount <= 0:
        raise FaucetError(f"{flag} {text}: the amount must be above 0")
    if amount > LIMITS[symbol] * 10**decimals:
        raise FaucetError(f"{flag} {text}: at most {LIMITS[symbol]} {symbol} at once on this devnet faucet")
    return amount


@dataclass(frozen=True)
class Order:
    """What to give one address, in base units (None: none of that token)."""

    address: str
    eth: int | None = None
    nega: int | None = None
    musd: int | None = None


def make_order(address: str, eth: str | None, nega: str | None, musd: str | None, nega_decimals: int = 18,
               musd_decimals: int = 6) -> Order:
    """Validate an address and amounts in token units; with no amount at all, DEFAULTS of each."""
    target = check_address(address)
    if eth is None and nega is None and musd is None:
        eth, nega, musd = DEFAULTS["ETH"], DEFAULTS["NEGA"], DEFAULTS["mUSD"]
    return Order(target,
                 None if eth is None else to_base_units(eth, ETH_DECIMALS, "ETH"),
                 None if nega is None else to_base_units(nega, nega_decimals, "NEGA"),
                 None if musd is None else to_base_units(musd, musd_decimals, "mUSD"))


def fund(web3: Any, manifest: Any, order: Order) -> list[Grant]:
    """Give `order` on the devnet at `web3` with deployment `manifest`; returns what was given.
    Raises FaucetError when the NEGA supply cap would be passed or the chain refuses."""
    from protocol.chain import ChainError, Transactor

    grants: list[Grant] = []
    abis = [entry.abi for entry in manifest.contracts.values()]
    if order.eth:
        balance = int(web3.eth.get_balance(order.address)) + order.eth
        answer = web3.provider.make_request("anvil_setBalance", [order.address, hex(balance)])
        if "error" in answer:
            raise FaucetError(f"the chain refused anvil_setBalance (is this an anvil devnet?): {answer['error']}")
        grants.append(Grant("ETH", ETH_DECIMALS, order.eth, int(web3.eth.get_balance(order.address))))
    admin = Transactor(web3, ANVIL_KEYS[0], abis=abis)
    try:
        if order.nega:
            token = manifest.contract(web3, "NegawattToken")
            decimals = int(token.functions.decimals().call())
            room = int(token.functions.cap().call()) - int(token.functions.totalSupply().call())
            if order.nega > room:
                raise FaucetError(f"--nega {format_units(order.nega, decimals)}: the token's supply cap leaves "
                                  f"{format_units(room, decimals, 'NEGA')} to mint")
            minter = token.functions.MINTER_ROLE().call()
            if not token.functions.hasRole(minter, admin.address).call():
                admin.send(token.functions.grantRole(minter, admin.address))
            admin.send(token.functions.mint(order.address, order.nega))
            grants.append(Grant("NEGA", decimals, order.nega, int(token.functions.balanceOf(order.address).call())))
        if order.musd:
            stablecoin = manifest.contract(web3, "MockStablecoin")
            decimals = int(stablecoin.functions.decimals().call())
            admin.send(stablecoin.functions.mint(order.address, order.musd))
            grants.append(Grant("mUSD", decimals, order.musd,
                                int(stablecoin.functions.balanceOf(order.address).call())))
    except ChainError as error:
        raise FaucetError(f"the chain refused the funding: {error}") from None
    return grants
