"""protocol.instants: the one parser of the instants people type (buyer, devnet warp, oracle verify)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.instants import MAX_INSTANT, MAX_INSTANT_CHARS, InstantError, parse_instant


def test_the_same_instant_in_every_notation():
    for text in ("2026-12-02T18:00Z", "2026-12-02T18:00:00+00:00", "2026-12-02T19:00+01:00", "1796234400"):
        assert parse_instant(text) == 1_796_234_400


@pytest.mark.parametrize("text, allow_unix, message", [
    ("", True, "is empty"),
    ("   ", True, "is empty"),
    ("2026-12-02T18:00", True, "has no timezone"),
    ("2026-12-02T18:00:00.5Z", True, "not a whole second"),
    ("tomorrow", True, "neither unix seconds nor an ISO 8601 time"),
    ("1796234400", False, "not an ISO 8601 time"),
    ("0", True, "out of range"),
    (str(MAX_INSTANT + 1), True, "out of range"),
    ("1" * (MAX_INSTANT_CHARS + 1), True, "too long"),
])
def test_refusals_say_what_was_wrong_and_name_the_option(text, allow_unix, message):
    with pytest.raises(InstantError, match=message) as refused:
        parse_instant(text, "--start", allow_unix=allow_unix)
    assert str(refused.value).startswith("--start")


@given(st.integers(1, 2**35))
def test_unix_seconds_and_their_iso_form_agree(seconds):
    from datetime import UTC, datetime
    iso = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    assert parse_instant(str(seconds)) == parse_instant(iso) == seconds
