"""The OpenADR 3.1.0 objects the facade reads and writes, as pydantic models with every input bounded.

The rule: a body is validated here before anything else looks at it; names and ids are 1 to 128
characters (the spec's bound), every list has a length bound (targets, intervals, payloads, values,
attributes, descriptors, resources, object operations), every string value one too, and durations
are ISO 8601 (`PT1H`). Unknown members are ignored, not refused, so a newer client's extra fields do
not break it; the wire names are the spec's camelCase (`programID`, `venID`, `callbackUrl`). What
the server adds (`id`, `createdDateTime`, `modificationDateTime`, `objectType`, `clientID`) is not
read from a body: a client cannot set it (a BL client may name the `clientID` a VEN belongs to).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, HttpUrl, StringConstraints
from pydantic.alias_generators import to_camel

MAX_TARGETS = 100
MAX_INTERVALS = 1_000
MAX_PAYLOADS = 50
MAX_VALUES = 1_000
MAX_ATTRIBUTES = 50
MAX_DESCRIPTORS = 50
MAX_RESOURCES = 100
MAX_OPERATIONS = 20
MAX_TEXT_VALUE = 1_024

Name = Annotated[str, StringConstraints(min_length=1, max_length=128)]
TypeName = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Text = Annotated[str, StringConstraints(max_length=MAX_TEXT_VALUE)]


class Model(BaseModel):
    """Base of every OpenADR object: camelCase on the wire, unknown members ignored."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class Point(Model):
    """A point of a CURVE payload."""

    x: float
    y: float


Value = bool | int | float | Text | Point


class ValuesMap(Model):
    """One typed list of values (payloads, attributes)."""

    type: TypeName
    values: list[Value] = Field(max_length=MAX_VALUES)


class IntervalPeriod(Model):
    """When an interval (or every interval of an object) starts, how long it lasts."""

    start: AwareDatetime
    duration: timedelta
    randomize_start: timedelta | None = None


class Interval(Model):
    """One interval: its id (position), an optional own period, its payloads."""

    id: int = Field(ge=0, le=2**31 - 1)
    interval_period: IntervalPeriod | None = None
    payloads: list[ValuesMap] = Field(min_length=1, max_length=MAX_PAYLOADS)


class Descriptor(Model):
    """A payload or report descriptor; kept as sent, bounded."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    payload_type: TypeName
    object_type: Name | None = None
    units: Name | None = None
    currency: Name | None = None


Targets = Annotated[list[Name], Field(max_length=MAX_TARGETS)]


class ProgramIn(Model):
    """POST/PUT /programs."""

    program_name: Name
    interval_period: IntervalPeriod | None = None
    program_descriptions: list[dict[str, Text]] | None = Field(None, max_length=MAX_DESCRIPTORS)
    payload_descriptors: list[Descriptor] | None = Field(None, max_length=MAX_DESCRIPTORS)
    targets: Targets | None = None
    attributes: list[ValuesMap] | None = Field(None, max_length=MAX_ATTRIBUTES)


class EventIn(Model):
    """POST/PUT /events."""

    program_id: Name = Field(alias="programID")
    event_name: Name | None = None
    priority: int | None = Field(None, ge=0, le=2**31 - 1)
    targets: Targets | None = None
    payload_descriptors: list[Descriptor] | None = Field(None, max_length=MAX_DESCRIPTORS)
    report_descriptors: list[Descriptor] | None = Field(None, max_length=MAX_DESCRIPTORS)
    interval_period: IntervalPeriod | None = None
    intervals: list[Interval] | None = Field(None, max_length=MAX_INTERVALS)
    duration: timedelta | None = None


class ReportResource(Model):
    """One resource's data in a report."""

    resource_name: Name
    interval_period: IntervalPeriod | None = None
    intervals: list[Interval] = Field(min_length=1, max_length=MAX_INTERVALS)


class ReportIn(Model):
    """POST/PUT /reports."""

    event_id: Name = Field(alias="eventID")
    client_name: Name
    report_name: Name | None = None
    payload_descriptors: list[Descriptor] | None = Field(None, max_length=MAX_DESCRIPTORS)
    resources: list[ReportResource] = Field(min_length=1, max_length=MAX_RESOURCES)


class VenIn(Model):
    """POST/PUT /vens (a VEN's own request, or a BL's naming the VEN's clientID and targets)."""

    ven_name: Name
    attributes: list[ValuesMap] | None = Field(None, max_length=MAX_ATTRIBUTES)
    targets: Targets | None = None
    client_id: Name | None = Field(None, alias="clientID")
    object_type: Literal["VEN_VEN_REQUEST", "BL_VEN_REQUEST"] | None = None


class ResourceIn(Model):
    """POST/PUT /resources."""

    resource_name: Name
    ven_id: Name = Field(alias="venID")
    attributes: list[ValuesMap] | None = Field(None, max_length=MAX_ATTRIBUTES)
    targets: Targets | None = None
    client_id: Name | None = Field(None, alias="clientID")
    object_type: Literal["VEN_RESOURCE_REQUEST", "BL_RESOURCE_REQUEST"] | None = None


class ObjectKind(str, Enum):
    """The object types a subscription may name (and the facade stores)."""

    PROGRAM = "PROGRAM"
    EVENT = "EVENT"
    REPORT = "REPORT"
    SUBSCRIPTION = "SUBSCRIPTION"
    VEN = "VEN"
    RESOURCE = "RESOURCE"


class Operation(str, Enum):
    """The operations a subscription may name."""

    GET = "GET"
    POST = "POST"
    PUT = "PUT"
    DELETE = "DELETE"


class ObjectOperation(Model):
    """Which objects and operations to notify, where, with which bearer token."""

    objects: list[ObjectKind] = Field(min_length=1, max_length=len(ObjectKind))
    operations: list[Operation] = Field(min_length=1, max_length=len(Operation))
    callback_url: HttpUrl
    bearer_token: Annotated[str, StringConstraints(max_length=4_096)] | None = None


class SubscriptionIn(Model):
    """POST/PUT /subscriptions."""

    client_name: Name
    program_id: Name | None = Field(None, alias="programID")
    object_operations: list[ObjectOperation] = Field(min_length=1, max_length=MAX_OPERATIONS)
    targets: Targets | None = None


def attribute(values_maps: list[ValuesMap] | list[dict] | None, name: str) -> list[Any] | None:
    """The values of the first attribute (or payload) of type `name`, or None."""
    for item in values_maps or []:
        kind = item.type if isinstance(item, ValuesMap) else item.get("type")
        if kind == name:
            return list(item.values if isinstance(item, ValuesMap) else item.get("values") or [])
    return None


def wire(model: Model) -> dict[str, Any]:
    """The model as the spec's JSON (camelCase, ISO 8601 times and durations)."""
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


def iso(moment: datetime) -> str:
    """A timestamp as the facade writes it (UTC, Z)."""
    return moment.isoformat().replace("+00:00", "Z")
