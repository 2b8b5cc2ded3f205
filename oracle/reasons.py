"""Why a device is ineligible, and what is flagged about it: one enum each, named by the code.

The rule: a member's code (the string reports carry) is its name in lower case, and its bit in a
bitmask is its position (`enum.auto()` in an `IntFlag`). So the order below is the order reports
list reasons in and must not change; add new members at the end (at most 8 each: the vectorised
engine keeps the masks in uint8).
"""

from __future__ import annotations

from enum import IntFlag, auto


class _Coded(IntFlag):
    """An IntFlag whose members carry their report code (the lower-case name)."""

    @property
    def code(self) -> str:
        """The string code reports use: the member's name in lower case."""
        assert self.name is not None, "only single members have a code"
        return self.name.lower()

    @classmethod
    def codes(cls, bits: int) -> list[str]:
        """The codes of the members set in `bits`, in member order."""
        return [member.code for member in cls if bits & member]


class Reason(_Coded):
    """Ineligibility reasons of the baseline engine and its quality gate, in report order."""

    INSUFFICIENT_HISTORY = auto()
    MISSING_ADJUSTMENT_READINGS = auto()
    MISSING_EVENT_READINGS = auto()
    INSUFFICIENT_HISTORY_FOR_QUALITY = auto()
    BASELINE_QUALITY = auto()


class Flag(_Coded):
    """Reported, non-disqualifying observations about a device's baseline."""

    ADJUSTMENT_CAPPED_UP = auto()
    PRE_EVENT_LOAD_JUMP = auto()
