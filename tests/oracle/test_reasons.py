"""oracle.reasons: the report codes and mask bits of reasons and flags, pinned to the values the
oracle reported before they were derived from the names."""

from __future__ import annotations

from oracle.baselines import FLAGS, REASONS
from oracle.reasons import Flag, Reason


def test_reason_codes_and_bits_are_pinned():
    assert [(r.code, int(r)) for r in Reason] == [
        ("insufficient_history", 1),
        ("missing_adjustment_readings", 2),
        ("missing_event_readings", 4),
        ("insufficient_history_for_quality", 8),
        ("baseline_quality", 16),
    ]
    assert REASONS == tuple(r.code for r in Reason)


def test_flag_codes_and_bits_are_pinned():
    assert [(f.code, int(f)) for f in Flag] == [("adjustment_capped_up", 1), ("pre_event_load_jump", 2)]
    assert FLAGS == ("adjustment_capped_up", "pre_event_load_jump")


def test_codes_of_a_mask_are_listed_in_member_order():
    assert Reason.codes(Reason.BASELINE_QUALITY | Reason.INSUFFICIENT_HISTORY) == [
        "insufficient_history", "baseline_quality"]
    assert Reason.codes(0) == [] and Flag.codes(3) == list(FLAGS)


def test_every_mask_fits_the_engine_uint8():
    assert len(Reason) <= 8 and len(Flag) <= 8
