"""The devnet's timekeeper: a quiet `negawatt devnet up` mines blocks on an interval and moves its
chain's clock `time_scale` times faster than the wall clock, so requests end, reports land and
challenge windows close with nobody sending a transaction.

The choice: a keeper thread in the `devnet up` process that, every `block_time` wall seconds, mines
one block stamped where the scaled clock is (anvil's `evm_mine` with a timestamp, one atomic call),
rather than anvil's `--block-time` with `anvil_setBlockTimestampInterval`. anvil's interval mining
turns automining off, so every transaction (each node's registration, a buyer's permit) would
wait for the next block; with the keeper anvil still mines each transaction at once, and the
keeper only adds the blocks that carry the clock forward. A block some other client mined further
ahead (a transaction, `negawatt devnet warp`) re-anchors the keeper there: the clock never goes
back and a warp is never undone. `time_scale` 1 is real time (a block every `block_time` seconds).

The roles read "now" from the chain (protocol.clock.ChainClock), so metering intervals, gates,
request windows and the challenge window all pass `time_scale` times faster. `devnet demo` moves
the clock itself (`Devnet.warp_to`, one interval at a time) and runs without a keeper.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Callable

log = logging.getLogger("negawatt.devnet.keeper")
MIN_BLOCK_TIME = 0.2
MAX_BLOCK_TIME = 60.0
MAX_TIME_SCALE = 1_000.0


class KeeperError(ValueError):
    """The keeper's options are out of range; the message says which."""


def check_options(time_scale: float, block_time: float) -> None:
    """Refuse a time scale outside 1..MAX_TIME_SCALE or a block time outside MIN..MAX_BLOCK_TIME."""
    if not 1.0 <= time_scale <= MAX_TIME_SCALE:
        raise KeeperError(f"--time-scale {time_scale:g} is out of range: 1 (real time) to {MAX_TIME_SCALE:g}")
    if not MIN_BLOCK_TIME <= block_time <= MAX_BLOCK_TIME:
        raise KeeperError(f"--block-time {block_time:g} is out of range: {MIN_BLOCK_TIME:g} to {MAX_BLOCK_TIME:g} s")


class RpcProblem(RuntimeError):
    """The chain answered a JSON-RPC call with an error."""


def rpc(web3: Any, method: str, params: list[Any]) -> Any:
    """One JSON-RPC call through web3's provider; raises RpcProblem on an error answer."""
    answer = web3.provider.make_request(method, params)
    if "error" in answer:
        raise RpcProblem(f"{method}: {answer['error'].get('message', answer['error'])}")
    return answer.get("result")


def latest_timestamp(web3: Any) -> int:
    """The latest block's timestamp (unix seconds)."""
    return int(web3.eth.get_block("latest")["timestamp"])


class Keeper:
    """Mines a block every `block_time` wall seconds at the chain time `time_scale` x the wall time
    elapsed since the last anchor (see the module docstring). `start()` runs it in a daemon thread,
    `stop()` ends it; `tick()` is one step (the tests drive it with their own wall clock)."""

    def __init__(self, web3: Any, time_scale: float = 30.0, block_time: float = 1.0,
                 wall: Callable[[], float] = time.monotonic):
        check_options(time_scale, block_time)
        self.web3 = web3
        self.time_scale = time_scale
        self.block_time = block_time
        self.wall = wall
        self.blocks = 0  # blocks this keeper mined
        self._anchor: tuple[float, float] | None = None  # (wall, chain time) the scaled clock runs from
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False

    def target(self, now_wall: float) -> float:
        """The chain time the scaled clock shows at wall time `now_wall` (anchored on the first call)."""
        if self._anchor is None:
            self._anchor = (now_wall, float(latest_timestamp(self.web3)))
        wall0, chain0 = self._anchor
        return chain0 + (now_wall - wall0) * self.time_scale

    def tick(self) -> int:
        """Mine one block at the scaled clock's time (or at anvil's own clock when some block is already
        past it, re-anchoring there); returns the mined block's timestamp."""
        now = self.wall()
        target = int(self.target(now))
        latest = latest_timestamp(self.web3)
        if target <= latest:  # a warp or a transaction got ahead: the clock runs on from there
            rpc(self.web3, "evm_mine", [])
            mined = latest_timestamp(self.web3)
            self._anchor = (now, float(mined))
        else:
            try:
                rpc(self.web3, "evm_mine", [{"timestamp": target}])
            except RpcProblem:  # a block landed above target between the read and the mine
                self._anchor = (now, float(latest_timestamp(self.web3)))
                return latest_timestamp(self.web3)
            mined = target
        self.blocks += 1
        return mined

    def _run(self) -> None:
        next_at = self.wall()
        while not self._stop.is_set():
            try:
                self.tick()
                if self._failing:
                    log.warning("the keeper reaches the chain again")
                self._failing = False
            except Exception as error:  # a busy or restarting chain must not end the keeper
                if not self._failing:
                    log.warning("the keeper could not mine a block: %s", error)
                self._failing = True
            next_at += self.block_time
            self._stop.wait(max(0.0, next_at - self.wall()))
            if next_at < self.wall() - self.block_time:  # fell behind (a slow chain): do not burst
                next_at = self.wall()

    def start(self) -> "Keeper":
        """Run the keeper in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="devnet-keeper", daemon=True)
        self._thread.start()
        log.info("keeper: a block every %g s, chain clock x%g", self.block_time, self.time_scale)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """End the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
