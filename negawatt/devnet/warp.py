"""`negawatt devnet warp`: move a running devnet's chain clock forward, for testers.

The rule: the clock only moves forward, by at most MAX_WARP_SECONDS at once (a week: the market's
settlement timeout on a devnet, and as many metering intervals as a node catches up on), and the
move is one atomic `evm_mine` stamped at the new time, so a keeper mining at the same moment
(negawatt.devnet.keeper) can neither undo it nor be undone. A target in the past, or a duration
that is zero, negative, unbounded or badly written, is refused with a message saying why.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from negawatt.devnet.keeper import RpcProblem, latest_timestamp, rpc
from protocol.instants import InstantError
from protocol.instants import parse_instant as parse_protocol_instant

MAX_WARP_SECONDS = 7 * 86_400
MAX_TEXT = 64
_UNITS = {"s": 1, "m": 60, "h": 3_600, "d": 86_400}
_PART = re.compile(r"([0-9]{1,7})([smhd])")


class WarpError(ValueError):
    """The warp was refused; the message says why (the clock did not move)."""


def parse_duration(text: str) -> int:
    """Seconds of a duration written as number-unit parts: "2h", "90m", "1h30m", "45s", "1d"
    (s, m, h, d), or plain seconds ("3600")."""
    text = (text or "").strip().lower()
    if not text or len(text) > MAX_TEXT:
        raise WarpError(f"--by {text[:MAX_TEXT]!r}: give a duration such as 2h, 90m, 1h30m or 3600")
    if text.isdigit():
        return int(text)
    parts = _PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise WarpError(f"--by {text!r} is not a duration: write number-unit parts (s, m, h, d), e.g. 2h, 90m, 1h30m")
    return sum(int(number) * _UNITS[unit] for number, unit in parts)


def parse_instant(text: str) -> int:
    """Unix seconds of `--to`: an ISO 8601 time with a timezone ("2026-12-02T18:00Z") or unix seconds
    (protocol.instants' rules)."""
    try:
        return parse_protocol_instant(text, "--to")
    except InstantError as error:
        raise WarpError(str(error)) from None


def iso(seconds: int) -> str:
    """Unix seconds as ISO 8601 UTC."""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def plan(now: int, to: int | None = None, by: int | None = None) -> int:
    """The timestamp to warp to from chain time `now`, given exactly one of `to` and `by`."""
    if (to is None) == (by is None):
        raise WarpError("give exactly one of --to ISO and --by DURATION")
    target = now + by if by is not None else to
    if target <= now:
        raise WarpError(f"the chain's clock only moves forward: it is {iso(now)} ({now}) and "
                        f"{iso(target) if target > 0 else target} is not after it")
    if target - now > MAX_WARP_SECONDS:
        raise WarpError(f"a warp moves at most {MAX_WARP_SECONDS // 86_400} days at once; "
                        f"{target - now} s asked (warp again to go further)")
    return target


def warp(web3: Any, target: int) -> int:
    """Mine one block stamped `target` (atomic); returns the latest block's timestamp afterwards.
    Raises WarpError when the chain refuses (its clock already passed `target`)."""
    try:
        rpc(web3, "evm_mine", [{"timestamp": int(target)}])
    except RpcProblem as error:
        raise WarpError(f"the chain refused the warp to {target}: {error}") from None
    return latest_timestamp(web3)
