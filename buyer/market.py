"""The buyer's transactions: fund the market (an ERC-2612 permit when the token takes one, else an
approval), open a request, cancel one.

The rule: every check of buyer.checks runs against the chain's clock, the market's rules and the
token before the first transaction, so a refused order sends nothing. Opening takes two
transactions (permit or approve, then openRequest) unless the market's allowance already covers the
budget. A cancellation is refused before sending when the request is not the buyer's, not open,
started, or already allocated (FlexMarket's AlreadyAllocated: the sites it accepted are committed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from web3.exceptions import Web3Exception

from buyer.chain_view import read_allocation, read_request
from buyer.checks import (BuyerError, MarketRules, OpenOrder, check_order, format_kw, format_units, gas_needed,
                          make_order)
from buyer.token import ERC20_PERMIT_ABI, TokenInfo, inspect_token, token_contract
from protocol.chain import ChainError, Transactor
from protocol.events import EventDecoder
from protocol.manifest import Manifest, ManifestError, check_chain
from protocol.statuses import RequestStatus

log = logging.getLogger(__name__)

PERMIT_LIFETIME = 3_600  # seconds a permit stays valid (it is used in the next transaction)
_PERMIT_TYPE = [{"name": "owner", "type": "address"}, {"name": "spender", "type": "address"},
                {"name": "value", "type": "uint256"}, {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"}]
_DOMAIN_TYPE = [{"name": "name", "type": "string"}, {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"}, {"name": "verifyingContract", "type": "address"}]


@dataclass
class Opened:
    """A request the buyer opened: its id, how the escrow was authorised and the transactions sent."""

    request_id: int
    funding: str  # "permit", "approve" or "allowance" (the existing allowance covered the budget)
    transactions: list[str] = field(default_factory=list)


def market_of(web3: Any, manifest: Manifest) -> Any:
    """The FlexMarket handle, after checking the RPC serves the manifest's chain."""
    try:
        check_chain(manifest, web3)
    except ManifestError as error:
        raise BuyerError(str(error)) from None
    return manifest.contract(web3, "FlexMarket")


def chain_time(web3: Any) -> int:
    """The earliest timestamp a transaction sent now can be mined at: the latest block's, plus one."""
    return int(web3.eth.get_block("latest")["timestamp"]) + 1


def pays_availability(market: Any) -> bool:
    """Whether this FlexMarket pays availability (its ABI has openRequestWithAvailability)."""
    return any(item.get("type") == "function" and item.get("name") == "openRequestWithAvailability"
               for item in market.abi)


def read_rules(web3: Any, market: Any) -> MarketRules:
    """The market's window bounds, gate lead, pause state and availability support, at the chain's time."""
    f = market.functions
    return MarketRules(now=chain_time(web3), min_duration=int(f.minDuration().call()),
                       max_duration=int(f.maxDuration().call()), gate_lead=int(f.gateLeadSeconds().call()),
                       paused=bool(f.paused().call()), pays_availability=pays_availability(market))


def prepare_open(web3: Any, manifest: Manifest, buyer: str, order: OpenOrder,
                 token: TokenInfo | None = None) -> tuple[TokenInfo, MarketRules]:
    """Run every check of `order` for `buyer` against the chain (nothing is sent); returns the token and
    the rules it was checked with. Raises BuyerError with the first reason it is refused."""
    market = market_of(web3, manifest)
    token = token or inspect_token(web3, order.token, buyer, market.address)
    rules = read_rules(web3, market)
    check_order(order, rules, token.decimals, token.symbol, token.balance, int(web3.eth.get_balance(buyer)),
                buyer=buyer, gas_wei=gas_needed(int(web3.eth.gas_price)))
    return token, rules


def _permit_signature(key: bytes, domain: dict[str, Any], owner: str, spender: str, value: int, nonce: int,
                      deadline: int) -> tuple[int, bytes, bytes]:
    document = {"types": {"EIP712Domain": _DOMAIN_TYPE, "Permit": _PERMIT_TYPE}, "primaryType": "Permit",
                "domain": domain, "message": {"owner": owner, "spender": spender, "value": value, "nonce": nonce,
                                              "deadline": deadline}}
    signed = Account.sign_message(encode_typed_data(full_message=document), key)
    return signed.v, signed.r.to_bytes(32, "big"), signed.s.to_bytes(32, "big")


def _fund(web3: Any, sender: Transactor, key: bytes, token: TokenInfo, spender: str, budget: int,
          now: int) -> tuple[str, str | None]:
    """Authorise the market to take `budget`: (how, transaction hash or None)."""
    if token.allowance >= budget:
        return "allowance", None
    erc20 = token_contract(web3, token.address)
    if token.has_permit:
        nonce = int(erc20.functions.nonces(sender.address).call())
        deadline = now + PERMIT_LIFETIME
        v, r, s = _permit_signature(key, token.permit_domain, sender.address, spender, budget, nonce, deadline)
        receipt = sender.send(erc20.functions.permit(sender.address, spender, budget, deadline, v, r, s))
        return "permit", receipt.tx_hash
    receipt = sender.send(erc20.functions.approve(spender, budget))
    return "approve", receipt.tx_hash


def send_open(web3: Any, manifest: Manifest, key: bytes, order: OpenOrder, token: TokenInfo,
              rules: MarketRules) -> Opened:
    """Fund the market and open the checked `order` (see prepare_open); returns what was sent. A
    revert raises BuyerError with the decoded reason (and says if the funding had been sent)."""
    market = manifest.contract(web3, "FlexMarket")
    sender = Transactor(web3, key, abis=[market.abi, ERC20_PERMIT_ABI])
    sent: list[str] = []
    try:
        how, tx = _fund(web3, sender, key, token, market.address, order.budget, rules.now)
    except (ChainError, Web3Exception) as error:
        raise BuyerError(f"the {'permit' if token.has_permit else 'approval'} was refused: {error}") from None
    if tx:
        sent.append(tx)
        log.info("market authorised by %s for %d base units in %s", how, order.budget, tx)
    if order.availability_price:
        call = market.functions.openRequestWithAvailability(order.zone, order.start, order.end, order.target_w,
                                                            order.price_per_kwh, order.availability_price,
                                                            token.address, order.budget)
    else:
        call = market.functions.openRequest(order.zone, order.start, order.end, order.target_w,
                                            order.price_per_kwh, token.address, order.budget)
    try:
        receipt = sender.send(call)
    except (ChainError, Web3Exception) as error:
        done = f" (the {how} in {tx} was sent)" if tx else ""
        raise BuyerError(f"openRequest was refused: {error}{done}") from None
    sent.append(receipt.tx_hash)
    decoder = EventDecoder.for_contract(market, "FlexMarket", events=("RequestOpened",))
    for raw in receipt.logs:
        event = decoder.decode(raw)
        if event is not None:
            request_id = int(event.args["requestId"])
            log.info("request %d opened in %s", request_id, receipt.tx_hash)
            return Opened(request_id, how, sent)
    raise BuyerError(f"openRequest {receipt.tx_hash} emitted no RequestOpened event")  # pragma: no cover


def open_request(web3: Any, manifest: Manifest, key: bytes, zone: int, start: int, end: int, target_w: int,
                 price_per_kwh: int, token: str, budget: int, availability_price: int | None = None) -> int:
    """Check and open a request for `target_w` in `zone` during [start, end) at a ceiling of
    `price_per_kwh` base units per kWh (and, where the market pays it, `availability_price` per kW
    per hour of availability), escrowing `budget` base units of `token`; returns its id.
    Raises BuyerError, before any transaction, on any refusal of buyer.checks."""
    order = make_order(zone=zone, start=start, end=end, target_w=target_w, price_per_kwh=price_per_kwh,
                       token=token, budget=budget, availability_price=availability_price)
    buyer = Account.from_key(key).address
    info, rules = prepare_open(web3, manifest, buyer, order)
    return send_open(web3, manifest, key, order, info, rules).request_id


def check_cancel(web3: Any, manifest: Manifest, buyer: str, request_id: int) -> None:
    """Refuse, before sending, a cancellation FlexMarket would revert: unknown request, another buyer's,
    not open, started, or allocated."""
    market = market_of(web3, manifest)
    request = read_request(market, request_id)
    if request is None:
        raise BuyerError(f"there is no request {request_id} on this chain")
    if request.buyer != buyer:
        raise BuyerError(f"request {request_id} belongs to {request.buyer}, not to {buyer}")
    if request.status != RequestStatus.OPEN:
        raise BuyerError(f"request {request_id} is {request.status.value}: only an open request can be cancelled")
    now = chain_time(web3)
    if now >= request.start:
        raise BuyerError(f"request {request_id}'s window started at {request.start}: it can no longer be cancelled")
    if request.allocated:
        allocation = read_allocation(web3, manifest, market, request_id)
        what = ""
        if allocation is not None:
            decimals = _decimals(web3, request.token)
            what = (f" ({format_kw(allocation.accepted_w)} accepted at "
                    f"{format_units(allocation.clearing_price, decimals)}/kWh)")
        raise BuyerError(f"request {request_id} is already allocated{what}: the sites it accepted are committed, "
                         "so it can no longer be cancelled")
    if bool(market.functions.paused().call()):
        raise BuyerError("FlexMarket is paused: no request can be cancelled now")


def _decimals(web3: Any, token: str) -> int:
    try:
        return int(token_contract(web3, token).functions.decimals().call())
    except Exception:
        return 0


def cancel_request(web3: Any, manifest: Manifest, key: bytes, request_id: int) -> int:
    """Cancel the buyer's open request `request_id` after check_cancel; returns the refund (base units)."""
    sender_address = Account.from_key(key).address
    check_cancel(web3, manifest, sender_address, request_id)
    market = manifest.contract(web3, "FlexMarket")
    sender = Transactor(web3, key, abis=[market.abi])
    try:
        receipt = sender.send(market.functions.cancel(int(request_id)))
    except ChainError as error:
        raise BuyerError(f"cancel was refused: {error}") from None
    decoder = EventDecoder.for_contract(market, "FlexMarket", events=("RequestCancelled",))
    for raw in receipt.logs:
        event = decoder.decode(raw)
        if event is not None:
            log.info("request %d cancelled in %s", request_id, receipt.tx_hash)
            return int(event.args["refund"])
    raise BuyerError(f"cancel {receipt.tx_hash} emitted no RequestCancelled event")  # pragma: no cover
