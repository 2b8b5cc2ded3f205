"""Units the protocol counts in. Energy is integer Wh, power integer W, money integer token base
units; floats never decide an amount. Division rounds down (toward zero), everywhere."""

from __future__ import annotations

WH_PER_KWH = 1_000
W_PER_KW = 1_000
SECONDS_PER_HOUR = 3_600
SECONDS_PER_DAY = 86_400
JOULES_PER_WH = 3_600
BPS = 10_000  # basis points in one whole: shares and tolerances are integer bps


def energy_wh(power_w: int, seconds: int) -> int:
    """Energy (Wh, rounded down) of `power_w` held for `seconds`."""
    return power_w * seconds // SECONDS_PER_HOUR


def payment(energy_wh_: int, price_per_kwh: int) -> int:
    """Token base units owed for `energy_wh_` at `price_per_kwh` base units per kWh (rounded down)."""
    return energy_wh_ * price_per_kwh // WH_PER_KWH


def bps_of(amount: int, bps: int) -> int:
    """`bps` basis points of `amount` (rounded down)."""
    return amount * bps // BPS


def format_units(amount: int, decimals: int, symbol: str = "") -> str:
    """Base units as an exact decimal string of token units (trailing zeros dropped)."""
    sign = "-" if amount < 0 else ""
    whole, fraction = divmod(abs(amount), 10**decimals)
    text = f"{whole}.{fraction:0{decimals}d}".rstrip("0").rstrip(".") if decimals else str(whole)
    return f"{sign}{text} {symbol}".rstrip()
