"""A site's signed day-ahead forecast of the flexibility it could offer, and its JSON codec.

A FlexForecast says, for each hour from `start` (unix seconds, a whole hour), what the site could
shed in that hour and at what price: at most MAX_TRANCHES_PER_HOUR tranches per hour (a confident
one and a less certain, dearer one), each `watts` W (1..2**32-1) at no less than `price` token base
units per kWh (0..2**128-1), prices strictly ascending within an hour; an hour with no tranche
offers nothing. At most MAX_FORECAST_HOURS hours, at least one. The SITE METER's device key signs
the EIP-712 FlexForecast(site, zone, start, hours, offersHash, sequence) under the DeviceRegistry's
domain, where

    offersHash = keccak256(abi.encode((uint64 watts, uint128 price)[][] offers))

i.e. the standard ABI encoding of one dynamic array (an entry per hour) of dynamic arrays of
(watts, price) tuples. Each array carries its length, so the hour boundaries are part of the hash
and no two different forecasts share an encoding. `hours` in the message is len(offers).
`sequence` counts the site's forecasts: a reader keeps the latest and refuses one whose sequence is
not above it.

JSON form (`encode_forecast` / `decode_forecast`, as protocol.messages writes the others):

    {"site", "zone", "start", "hours": [[{"watts", "price"}, ...], ...], "sequence", "signature"}

integers are JSON integers (strict: "2", 2.0 and true are refused) in their field's range, the
site a 0x address (mixed case must be EIP-55), unknown fields are refused and every list is bounded
before it is read.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Annotated, Any

from eth_abi import encode as abi_encode
from eth_utils import keccak, to_checksum_address
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from protocol import eip712
from protocol.addresses import checksummed, hex_bytes
from protocol.messages import MAX_SEQUENCE, MAX_SIGNATURE_CHARS
from protocol.units import SECONDS_PER_HOUR

MAX_FORECAST_HOURS = 48
MAX_TRANCHES_PER_HOUR = 2
MAX_TRANCHE_WATTS = 2**32 - 1  # a site's rating is a uint32 in the DeviceRegistry
MAX_PRICE = 2**128 - 1
MAX_ZONE = 2**32 - 1
MAX_START = 2**40  # far beyond any real date; keeps start + hours inside uint64
OFFERS_ABI_TYPE = "(uint64,uint128)[][]"


@dataclass(frozen=True)
class Tranche:
    """Up to `watts` W shed at no less than `price` token base units per kWh."""

    watts: int
    price: int


@dataclass(frozen=True)
class FlexForecast:
    """A site's forecast: `hours[i]` is what it offers in [start + i h, start + (i + 1) h)."""

    site: str
    zone: int
    start: int
    hours: tuple[tuple[Tranche, ...], ...]
    sequence: int
    signature: bytes = field(default=b"", compare=False)

    @property
    def end(self) -> int:
        """Unix time just after the last forecast hour."""
        return self.start + SECONDS_PER_HOUR * len(self.hours)

    def offers_hash(self) -> bytes:
        """keccak256(abi.encode((uint64,uint128)[][])) of the hourly tranches (see the module docstring)."""
        offers = [[(tranche.watts, tranche.price) for tranche in hour] for hour in self.hours]
        return keccak(abi_encode([OFFERS_ABI_TYPE], [offers]))

    def message(self) -> dict[str, Any]:
        """The EIP-712 message fields."""
        return {"site": to_checksum_address(self.site), "zone": self.zone, "start": self.start,
                "hours": len(self.hours), "offersHash": self.offers_hash(), "sequence": self.sequence}

    def signed(self, site_key: bytes | str, chain_id: int, registry: str) -> "FlexForecast":
        """This forecast with the site meter key's signature attached."""
        return replace(self, signature=eip712.sign(site_key, "FlexForecast", self.message(), chain_id, registry))

    def signer(self, chain_id: int, registry: str) -> str:
        """The address that signed this forecast (raises ValueError on a malformed signature)."""
        return eip712.recover("FlexForecast", self.message(), self.signature, chain_id, registry)


# ------------------------------------------------------------------------------------------------
# the JSON codec


class TrancheMessage(BaseModel):
    """One tranche: `watts` W (at least 1) at no less than `price` base units per kWh."""

    model_config = ConfigDict(strict=True, extra="forbid")

    watts: Annotated[int, Field(ge=1, le=MAX_TRANCHE_WATTS, description="W the site can shed")]
    price: Annotated[int, Field(ge=0, le=MAX_PRICE, description="minimum price, token base units per kWh")]


Hour = Annotated[list[TrancheMessage], Field(max_length=MAX_TRANCHES_PER_HOUR)]


class ForecastMessage(BaseModel):
    """The JSON form of a signed FlexForecast."""

    model_config = ConfigDict(strict=True, extra="forbid")

    site: str = Field(max_length=42, description="the site meter's address, 0x + 40 hex digits",
                      json_schema_extra={"pattern": r"^0x[0-9a-fA-F]{40}$"})
    zone: Annotated[int, Field(ge=0, le=MAX_ZONE)]
    start: Annotated[int, Field(ge=0, le=MAX_START, description="unix seconds, a whole hour",
                                json_schema_extra={"multipleOf": SECONDS_PER_HOUR})]
    hours: list[Hour] = Field(min_length=1, max_length=MAX_FORECAST_HOURS,
                              description="one entry per hour from `start`: its tranches, prices ascending")
    sequence: Annotated[int, Field(ge=0, le=MAX_SEQUENCE)]
    signature: str = Field(max_length=MAX_SIGNATURE_CHARS, description="the site meter key's signature, 0x-hex",
                           json_schema_extra={"pattern": r"^0x(?:[0-9a-fA-F]{2})*$"})

    @field_validator("site")
    @classmethod
    def _checksummed(cls, value: str) -> str:
        return checksummed(value)

    @field_validator("signature")
    @classmethod
    def _hex(cls, value: str) -> str:
        hex_bytes(value)
        return value

    @model_validator(mode="after")
    def _whole_hours_and_ordered_tranches(self) -> "ForecastMessage":
        if self.start % SECONDS_PER_HOUR:
            raise ValueError(f"start {self.start} is not a whole hour (a multiple of {SECONDS_PER_HOUR} s)")
        for index, hour in enumerate(self.hours):
            for lower, higher in zip(hour, hour[1:]):
                if higher.price <= lower.price:
                    raise ValueError(f"hour {index}: tranche prices must ascend strictly (a second tranche is "
                                     f"the less certain, dearer one), got {lower.price} then {higher.price}")
        return self

    def to_forecast(self) -> FlexForecast:
        """The protocol message."""
        hours = tuple(tuple(Tranche(t.watts, t.price) for t in hour) for hour in self.hours)
        return FlexForecast(self.site, self.zone, self.start, hours, self.sequence, hex_bytes(self.signature))


def encode_forecast(forecast: FlexForecast) -> dict[str, Any]:
    """The JSON object a node sends for `forecast`."""
    return {"site": to_checksum_address(forecast.site), "zone": forecast.zone, "start": forecast.start,
            "hours": [[{"watts": t.watts, "price": t.price} for t in hour] for hour in forecast.hours],
            "sequence": forecast.sequence, "signature": "0x" + forecast.signature.hex()}


def decode_forecast(data: dict[str, Any] | str | bytes) -> FlexForecast:
    """The FlexForecast in a JSON object (or its text); pydantic.ValidationError says what is wrong."""
    model = ForecastMessage.model_validate_json(data) if isinstance(data, (str, bytes)) \
        else ForecastMessage.model_validate(data)
    return model.to_forecast()
