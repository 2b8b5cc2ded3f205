"""Device kinds, as the DeviceRegistry numbers them (`uint8 kind`, at most MAX_KIND).

One name per on-chain number, used by every role: the node configures devices by name, the chain
stores the number, the API serves both. Kind 5 is the registry's "other load"; the network calls
it `household` (a whole-home or otherwise unclassified load), and the API accepts `other` as an
alias so old links keep working. Kind 6 is a site meter: the meter at the premises' boundary (the
connection to the grid), which the oracles settle against; it is metered, never dispatched.
"""

from __future__ import annotations

from enum import IntEnum


class DeviceKind(IntEnum):
    """A device kind and its on-chain number (DeviceRegistry)."""

    EV_CHARGER = 0
    HEAT_PUMP = 1
    HVAC = 2
    BATTERY = 3
    WATER_HEATER = 4
    HOUSEHOLD = 5
    SITE_METER = 6

    @property
    def label(self) -> str:
        """The kind's name as configs and the API write it (`ev_charger`, ...)."""
        return self.name.lower()


MAX_KIND = max(DeviceKind)
ALIASES: dict[str, DeviceKind] = {"other": DeviceKind.HOUSEHOLD}
KIND_NUMBERS: dict[str, int] = {kind.label: int(kind) for kind in DeviceKind}
CONTROLLABLE_KINDS = frozenset(kind for kind in DeviceKind if kind is not DeviceKind.SITE_METER)
KIND_NAMES: dict[int, str] = {int(kind): kind.label for kind in DeviceKind}


def parse_kind(value: str | int) -> DeviceKind:
    """The kind named by `value` (a name, an alias or an on-chain number); ValueError says what is known."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return DeviceKind(value)
        except ValueError:
            raise ValueError(f"unknown device kind number {value}; known: 0..{int(MAX_KIND)}") from None
    text = str(value)
    if text.isdigit() and len(text) <= 3:
        return parse_kind(int(text))
    if text in KIND_NUMBERS:
        return DeviceKind(KIND_NUMBERS[text])
    if text in ALIASES:
        return ALIASES[text]
    raise ValueError(f"unknown device kind {text[:40]!r}; known kinds: {', '.join(KIND_NUMBERS)}")

