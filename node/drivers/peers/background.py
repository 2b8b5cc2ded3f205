"""The connection loop a simulated peer runs in the background, started and stopped the same way
by every peer that dials out (the OCPP charger to the Central System, the plug to its broker)."""

from __future__ import annotations

import asyncio
import contextlib


class BackgroundPeer:
    """A peer whose `_run()` coroutine connects and keeps reconnecting until stopped."""

    connected: bool = False
    _task: asyncio.Task | None = None

    async def start(self) -> None:
        """Connect (and keep reconnecting) in the background on the running loop."""
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        """Disconnect and stay away."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None
        self.connected = False

    async def _run(self) -> None:  # pragma: no cover - each peer defines its loop
        raise NotImplementedError
