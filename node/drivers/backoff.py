"""Reconnect back-off shared by the device drivers: exponential, capped, with jitter.

A driver that loses its device waits `next_delay()` before each new attempt (initial, doubling up
to `maximum`, each delay spread by +-`jitter` so that many gateways restarted by one power cut do
not reconnect in lock-step) and calls `reset()` once it is connected again.
"""

from __future__ import annotations

import random


class Backoff:
    """Delays between reconnection attempts."""

    def __init__(self, initial: float = 0.5, maximum: float = 30.0, factor: float = 2.0, jitter: float = 0.1,
                 rng: random.Random | None = None):
        if not 0 < initial <= maximum:
            raise ValueError("back-off needs 0 < initial <= maximum")
        if factor < 1 or not 0 <= jitter < 1:
            raise ValueError("back-off needs factor >= 1 and 0 <= jitter < 1")
        self.initial, self.maximum, self.factor, self.jitter = initial, maximum, factor, jitter
        self.attempts = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        """The wait before the next attempt (and count the attempt)."""
        base = min(self.maximum, self.initial * self.factor ** self.attempts)
        self.attempts += 1
        spread = base * self.jitter
        return min(self.maximum, max(0.0, base + self._rng.uniform(-spread, spread)))

    def reset(self) -> None:
        """Connected again: the next failure starts from `initial`."""
        self.attempts = 0
