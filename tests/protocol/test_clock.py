"""protocol.clock follows a chain whose clock was moved forward, and keeps running while it idles."""

from __future__ import annotations

import time

from protocol.clock import ChainClock


def test_clock_follows_a_warped_chain_and_keeps_running(devnet):
    web3 = devnet.web3()
    clock = ChainClock(web3, refresh_seconds=0.0)
    assert abs(clock() - time.time()) < 5
    web3.provider.make_request("evm_increaseTime", [3_600])
    web3.provider.make_request("evm_mine", [])
    warped = clock()
    assert warped - time.time() > 3_590
    time.sleep(1.1)
    assert clock() - warped >= 1.0
