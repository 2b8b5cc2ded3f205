"""The buyer's requests as the chain records them: FlexMarket.getRequest, the AllocationPosted event
(the root, accepted power and clearing price live only there) and the RequestOpened events of one
buyer (the list's fallback when the API is down).

Logs are read in bounded block ranges from the market's deployment block, filtered by the indexed
topics (request id, buyer), and decoded with protocol.events.EventDecoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import event_abi_to_log_topic, to_checksum_address

from protocol.events import ChainEvent, EventDecoder
from protocol.manifest import Manifest
from protocol.requests import as_bytes32
from protocol.statuses import RequestStatus

LOG_RANGE = 10_000  # most blocks per eth_getLogs call


@dataclass(frozen=True)
class ChainRequest:
    """FlexMarket.getRequest of one request (amounts in the payment token's base units, power in W)."""

    request_id: int
    buyer: str
    start: int
    end: int
    status: RequestStatus
    allocated: bool
    token: str
    zone: int
    target_w: int
    price_per_kwh: int
    escrow: int
    deposited: int
    paid: int

    @property
    def refunded(self) -> int:
        """What went (or is owed) back to the buyer: once the request is cancelled, expired or settled,
        the deposit minus the payout (FlexMarket: paid + refunded + held + owed == deposited, and
        nothing is held then); 0 while it is open or settling."""
        if self.status in (RequestStatus.CANCELLED, RequestStatus.EXPIRED, RequestStatus.SETTLED):
            return self.deposited - self.paid - self.escrow
        return 0

    @property
    def seconds(self) -> int:
        """The window's length."""
        return self.end - self.start


@dataclass(frozen=True)
class Allocation:
    """A request's clearing result as its AllocationPosted event records it (prices in base units: per
    kWh delivered, and per kW per hour of availability, 0 when the request pays none)."""

    root: bytes
    accepted_w: int
    clearing_price: int
    availability_price: int = 0


def read_request(market: Any, request_id: int) -> ChainRequest | None:
    """The request `request_id` from FlexMarket.getRequest, or None when it does not exist."""
    raw = market.functions.getRequest(int(request_id)).call()
    (buyer, start, end, status, allocated, token, zone, target_w, price, escrow, deposited, paid) = raw
    if int(status) == RequestStatus.NONE.number:
        return None
    return ChainRequest(int(request_id), to_checksum_address(buyer), int(start), int(end),
                        RequestStatus.from_number(int(status)), bool(allocated), to_checksum_address(token),
                        int(zone), int(target_w), int(price), int(escrow), int(deposited), int(paid))


def _topic(market: Any, name: str) -> bytes:
    for item in market.abi:
        if item.get("type") == "event" and item["name"] == name:
            return event_abi_to_log_topic(item)
    raise KeyError(f"FlexMarket's ABI has no event {name}")


def _word(value: int | str) -> str:
    if isinstance(value, str):
        return "0x" + value.lower().removeprefix("0x").rjust(64, "0")
    return "0x" + int(value).to_bytes(32, "big").hex()


def _events(web3: Any, manifest: Manifest, market: Any, name: str, topics: list[str | None]) -> list[ChainEvent]:
    decoder = EventDecoder.for_contract(market, "FlexMarket", events=(name,))
    head = int(web3.eth.block_number)
    found: list[ChainEvent] = []
    block = manifest.contracts["FlexMarket"].block
    topic0 = "0x" + _topic(market, name).hex()
    while block <= head:
        last = min(head, block + LOG_RANGE - 1)
        logs = web3.eth.get_logs({"address": market.address, "fromBlock": block, "toBlock": last,
                                  "topics": [topic0, *topics]})
        found.extend(event for event in map(decoder.decode, logs) if event is not None)
        block = last + 1
    return found


def read_allocation(web3: Any, manifest: Manifest, market: Any, request_id: int) -> Allocation | None:
    """The request's posted clearing result (its AllocationPosted event), or None before it is posted."""
    events = _events(web3, manifest, market, "AllocationPosted", [_word(request_id)])
    if not events:
        return None
    args = events[-1].args
    return Allocation(as_bytes32(args["root"]), int(args["acceptedW"]), int(args["clearingPrice"]),
                      int(args.get("availabilityPrice", 0)))


def availability_ceiling(market: Any, request_id: int) -> int:
    """The request's availability ceiling per kW per hour (0: it pays none, or the market pays none)."""
    if not any(item.get("name") == "availabilityPriceOf" for item in market.abi):
        return 0
    return int(market.functions.availabilityPriceOf(int(request_id)).call())


def opened_by(web3: Any, manifest: Manifest, market: Any, buyer: str) -> list[int]:
    """Ids of the requests `buyer` opened (its RequestOpened events), oldest first."""
    events = _events(web3, manifest, market, "RequestOpened", [None, _word(to_checksum_address(buyer))])
    return sorted(int(event.args["requestId"]) for event in events)
