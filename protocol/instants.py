"""Instants written by people (CLI options, files): unix seconds or ISO 8601 with an explicit offset.

Rules, the same for every role:
- Text is bounded (`MAX_INSTANT_CHARS`) before it is parsed, and empty text is refused.
- Digits are unix seconds (where the caller allows them); anything else must be ISO 8601.
- A time without a UTC offset is refused: the instant it names would depend on the machine's time
  zone. A fraction of a second is refused: every time on chain is whole seconds.
- The instant must lie in 1 .. 2**40 - 1 unix seconds (the chain's uint40 times).

Errors are `InstantError` (a ValueError) naming the option (`what`) and saying what to write
instead; each role turns it into its own error type.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

MAX_INSTANT_CHARS = 64
MAX_INSTANT = 2**40 - 1
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class InstantError(ValueError):
    """The text is not an instant this module accepts; the message says why."""


def parse_instant(text: str | None, what: str = "time", *, allow_unix: bool = True) -> int:
    """Unix seconds of `text` by the module's rules; InstantError otherwise."""
    text = (text or "").strip()
    if not text:
        raise InstantError(f"{what} is empty: give an ISO 8601 time with an offset, e.g. 2026-12-02T18:00Z"
                           + (", or unix seconds" if allow_unix else ""))
    if len(text) > MAX_INSTANT_CHARS:
        raise InstantError(f"{what} is too long ({len(text)} characters, at most {MAX_INSTANT_CHARS})")
    if allow_unix and text.isdigit():
        value = int(text)
    else:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            kind = "neither unix seconds nor an ISO 8601 time" if allow_unix else "not an ISO 8601 time"
            raise InstantError(f"{what} {text!r} is {kind}") from None
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise InstantError(f"{what} {text!r} has no timezone (no UTC offset): add one, e.g. {text}Z "
                               f"or {text}+01:00")
        if moment.microsecond:
            raise InstantError(f"{what} {text!r} is not a whole second (fractional seconds)")
        value = (moment - _EPOCH) // timedelta(seconds=1)
    if not 0 < value <= MAX_INSTANT:
        raise InstantError(f"{what} {value} is out of range (1 to {MAX_INSTANT} unix seconds)")
    return value
