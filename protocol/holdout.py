"""The randomized holdout: which committed sites of a request are not dispatched (the control group).

The rule, computed alone by every oracle and every node:

    gate closure   = request start - the market's gate lead (FlexMarket.gateLeadSeconds, snapshotted
                     in the request's RequestRules event); no commitment is accepted from then on
    gate block     = the first block whose timestamp is >= gate closure
    held out(site) = uint256(keccak256(abi.encode(bytes32 gate block hash, uint256 request id,
                                                   address site))) % 10_000 < holdout_bps

The seed did not exist when the commitments were signed (they all precede gate closure), so no site
can choose its group, and every site's chance is exactly holdout_bps / 10_000 on every request.

How far it can be biased: the proposer of the gate block can see the draw before publishing the
block, and can only either publish it or withhold it (losing its block reward and handing the slot
on); with one withheld slot it picks the better of two draws. An attacker who wants one given site
dispatched therefore moves that site's odds from p to at most 1 - (1 - p)^2 (15 % -> 27.75 %) per
controlled slot, at the cost of a block reward each time, and learns nothing about future requests.
A stronger beacon (a RANDAO value a few epochs after gate closure, a drand round, or a VRF of the
oracles) replaces `seed` below; everything else stays as it is.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from eth_abi import encode
from eth_utils import keccak, to_checksum_address

from protocol.units import BPS

MAX_HOLDOUT_BPS = 5_000  # at most half of the committed sites are held out


def draw_value(seed: bytes, request_id: int, site: str) -> int:
    """The site's uniform draw in 0..9_999 for a request (see the module docstring)."""
    if len(seed) != 32:
        raise ValueError("the holdout seed is a 32-byte block hash")
    digest = keccak(encode(["bytes32", "uint256", "address"], [seed, request_id, to_checksum_address(site)]))
    return int.from_bytes(digest, "big") % BPS


def is_held_out(seed: bytes, request_id: int, site: str, holdout_bps: int) -> bool:
    """Whether `site` is held out of `request_id` (not dispatched, in the control group)."""
    if not 0 <= holdout_bps <= MAX_HOLDOUT_BPS:
        raise ValueError(f"holdout_bps must be within 0..{MAX_HOLDOUT_BPS}, got {holdout_bps}")
    return draw_value(seed, request_id, site) < holdout_bps


def gate_block_number(timestamp_of: Callable[[int], int], latest: int, gate_closure: int) -> int | None:
    """The first block at or after `gate_closure` (binary search over block timestamps), or None if
    no block that late exists yet (the draw is not known before that block is mined).

    `timestamp_of(n)` is block n's timestamp and `latest` the newest block number: O(log latest) calls."""
    if latest < 0 or timestamp_of(latest) < gate_closure:
        return None
    low, high = 0, latest
    while low < high:
        middle = (low + high) // 2
        if timestamp_of(middle) >= gate_closure:
            high = middle
        else:
            low = middle + 1
    return low


class GateSeeds:
    """Gate block hashes read from a chain (web3), once per gate time: a block that deep never changes.
    Oracles settle with them and nodes learn from them whether their site is dispatched."""

    def __init__(self, web3: Any):
        self.web3 = web3
        self._known: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def seed(self, gate_closure: int) -> bytes | None:
        """The seed of every request whose gate closes at `gate_closure`, or None while no block at or
        after it exists (the draw is not known yet)."""
        with self._lock:
            if gate_closure in self._known:
                return self._known[gate_closure]
            latest = int(self.web3.eth.block_number)
            number = gate_block_number(lambda n: int(self.web3.eth.get_block(n)["timestamp"]), latest, gate_closure)
            if number is None:
                return None
            seed = bytes(self.web3.eth.get_block(number)["hash"])
            self._known[gate_closure] = seed
            return seed
