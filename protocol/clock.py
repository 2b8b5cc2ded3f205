"""A clock that never runs behind the chain.

On a real network block time follows the wall clock, so this is the wall clock. On a devnet, time
can be compressed by moving the chain forward (anvil's evm_increaseTime): every role then reads
"now" from here, so meter intervals, request windows and challenge windows all move together.
"""

from __future__ import annotations

import threading
import time
from typing import Any


class ChainClock:
    """Unix seconds: the wall clock plus the largest lead the chain's blocks have shown over it.

    The lead only grows (a block stamped ahead of the wall clock means the chain's clock was moved
    forward, and it stays moved), so this clock never goes backwards and keeps running while the
    chain is idle.
    """

    def __init__(self, web3: Any, refresh_seconds: float = 1.0):
        self.web3 = web3
        self.refresh_seconds = refresh_seconds
        self._lock = threading.Lock()
        self._lead = 0.0
        self._read_at = float("-inf")

    def __call__(self) -> float:
        with self._lock:
            if time.monotonic() - self._read_at >= self.refresh_seconds:
                try:
                    latest = float(self.web3.eth.get_block("latest")["timestamp"])
                    self._lead = max(self._lead, latest - time.time())
                    self._read_at = time.monotonic()
                except Exception:  # the chain being unreachable must not stop the clock
                    pass
            return time.time() + self._lead
