"""The problem+json format (RFC 9457) every negawatt HTTP app answers errors with, and its reason codes.

A problem body is `{"type", "title", "status", "detail", "code", ...extra}`: `code` is the
machine-readable reason (a `Reason` value) clients match on, and `type` is the reason under the
app's namespace (`PROBLEM_NAMESPACES`). The codes are part of the wire contract: nodes, the dApp and
the tests match on them, so a member's value never changes.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, Field

PROBLEM_MEDIA_TYPE = "application/problem+json"


class Reason(str, Enum):
    """Every reason code a negawatt HTTP app serves (value = the `code` on the wire)."""

    # generic HTTP and request validation
    BAD_REQUEST = "bad_request"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    TOO_LARGE = "too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    HTTP_ERROR = "http_error"
    INTERNAL_ERROR = "internal_error"
    RATE_LIMITED = "rate_limited"
    INVALID_PARAMETER = "invalid_parameter"
    INVALID_ADDRESS = "invalid_address"
    INVALID_DIGEST = "invalid_digest"
    INVALID_CURSOR = "invalid_cursor"
    INVALID_EPOCH = "invalid_epoch"
    # lookups
    UNKNOWN_DEVICE = "unknown_device"
    UNKNOWN_REQUEST = "unknown_request"
    UNKNOWN_REPORT = "unknown_report"
    UNKNOWN_ALLOCATION = "unknown_allocation"
    NOT_ACCEPTED = "not_accepted"
    ALLOCATION_NOT_FETCHED = "allocation_not_fetched"
    NOT_SETTLED = "not_settled"
    # API readiness and identity (SIWE)
    INDEXER_LAGGING = "indexer_lagging"
    CHAIN_UNREACHABLE = "chain_unreachable"
    UNAUTHENTICATED = "unauthenticated"
    NOT_OWNER = "not_owner"
    INVALID_SIWE_MESSAGE = "invalid_siwe_message"
    SIWE_DOMAIN_MISMATCH = "siwe_domain_mismatch"
    SIWE_CHAIN_MISMATCH = "siwe_chain_mismatch"
    SIWE_EXPIRED = "siwe_expired"
    SIWE_NOT_YET_VALID = "siwe_not_yet_valid"
    SIWE_BAD_SIGNATURE = "siwe_bad_signature"
    SIWE_BAD_NONCE = "siwe_bad_nonce"
    # oracle ingest (oracle.ingest.REASONS gives their HTTP status and title)
    INVALID_PAYLOAD = "invalid_payload"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    TOO_MANY_BATCHES = "too_many_batches"  # a bulk upload over its batch cap (oracle.bulk_ingest_api)
    BAD_SIGNATURE = "bad_signature"
    DEVICE_INACTIVE = "device_inactive"
    INTERVAL_NOT_ALLOWED = "interval_not_allowed"
    MISALIGNED_INTERVAL = "misaligned_interval"
    EMPTY_BATCH = "empty_batch"
    TOO_MANY_READINGS = "too_many_readings"
    FUTURE_INTERVAL = "future_interval"
    READING_OUT_OF_RANGE = "reading_out_of_range"
    SEQUENCE_CONFLICT = "sequence_conflict"
    OVERLAPPING_INTERVAL = "overlapping_interval"
    REQUEST_NOT_OPEN = "request_not_open"
    REQUEST_STARTED = "request_started"
    ZONE_MISMATCH = "zone_mismatch"
    WATTS_OUT_OF_RANGE = "watts_out_of_range"
    OFFER_ABOVE_CEILING = "offer_above_ceiling"
    OFFER_OUT_OF_ORDER = "offer_out_of_order"
    COMMITMENT_CONFLICT = "commitment_conflict"
    ABOVE_TESTED_CAPABILITY = "above_tested_capability"
    CHAIN_UNAVAILABLE = "chain_unavailable"
    # oracle attestation (a declined proposal)
    PREVIOUS_REPORT_UNKNOWN = "previous_report_unknown"
    REQUEST_NOT_ENDED = "request_not_ended"
    REPORT_PENDING = "report_pending"
    WRONG_EPOCH = "wrong_epoch"
    WRONG_PREVIOUS_ROOT = "wrong_previous_root"
    NO_REQUESTS = "no_requests"
    # oracle attestation (who may propose: protocol.proposals)
    STALE_PROPOSAL = "stale_proposal"
    NOT_AN_ORACLE = "not_an_oracle"


class ProblemNamespace(str, Enum):
    """The `type` URI template of each app's problems (`{code}` is the reason)."""

    API = "https://negawatt.network/problems/{code}"
    INGEST = "urn:negawatt:ingest:{code}"


class Problem(BaseModel):
    """An RFC 9457 problem (`application/problem+json`), as the OpenAPI documents describe it."""

    type: str
    title: str
    status: int
    detail: str
    code: str = Field(description="machine-readable reason")
    errors: list[dict] | None = Field(None, description="each invalid parameter and why")


def reason_code(reason: Reason | str) -> str:
    """The wire code of `reason` (a Reason member or an already plain code string)."""
    return reason.value if isinstance(reason, Reason) else str(reason)


def problem_body(namespace: ProblemNamespace, status: int, reason: Reason | str, title: str, detail: str,
                 **extra: Any) -> dict[str, Any]:
    """The problem document as a dict: type, title, status, detail, code, then any extra members."""
    code = reason_code(reason)
    return {"type": namespace.value.format(code=code), "title": title, "status": status, "detail": detail,
            "code": code, **extra}

