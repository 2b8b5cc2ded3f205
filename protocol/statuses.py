"""Life cycles the contracts define, mirrored once for every role.

`RequestStatus` is FlexMarket.Status and `ReportStatus` is OracleHub.ReportStatus, member for
member and in the same order, so `RequestStatus(n)` decodes the contract's uint8. Their string
values are what the API serves and stores. `StoredReportStatus` is the oracle's own record of a
report it holds (computed by it, submitted on chain, final, or discarded by a challenge); it only
moves forward, in the order listed.
"""

from __future__ import annotations

from enum import Enum


class _Ordered(str, Enum):
    """A string enum whose on-chain number is its position (enum order in Solidity)."""

    @property
    def number(self) -> int:
        """The Solidity enum value."""
        return list(type(self)).index(self)

    @classmethod
    def from_number(cls, number: int) -> "_Ordered":
        """The member with Solidity enum value `number`."""
        members = list(cls)
        if not 0 <= number < len(members):
            raise ValueError(f"{cls.__name__} has no value {number}")
        return members[number]


class RequestStatus(_Ordered):
    """FlexMarket.Status: None, Open, Cancelled, Settling, Settled, Expired."""

    NONE = "none"
    OPEN = "open"
    CANCELLED = "cancelled"
    SETTLING = "settling"
    SETTLED = "settled"
    EXPIRED = "expired"


class ReportStatus(_Ordered):
    """OracleHub.ReportStatus: None, Pending, Challenged (a finalized report leaves the slot: None)."""

    NONE = "none"
    PENDING = "pending"
    CHALLENGED = "challenged"


class StoredReportStatus(str, Enum):
    """An oracle's own record of a report; the order is the only direction it may move."""

    COMPUTED = "computed"
    SUBMITTED = "submitted"
    FINAL = "final"
    DISCARDED = "discarded"

    @property
    def rank(self) -> int:
        """Position in the forward order."""
        return list(StoredReportStatus).index(self)


class IndexedReportStatus(str, Enum):
    """A report as the API's mirror of the chain sees it: pending, challenged, final or discarded."""

    PENDING = "pending"
    CHALLENGED = "challenged"
    FINAL = "final"
    DISCARDED = "discarded"
