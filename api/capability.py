"""Capability records (proof of flexibility, protocol.capability) in the mirror, and their reads.

A capability test's report document carries, in its request's `verification`, one record per tested
site: `{"site", "requestId", "testedW", "passed", "testedAt"}` (`"capabilityTest": true` marks the
request). Like the rest of `verification`, the records are the oracles' account and are not covered
by the Merkle root; they are stored with the verified document (`capability_records`), read strictly
(a malformed record leaves the whole request's records out, with a warning), and served:

* `GET /v1/sites/{address}/capability`: the site's records, newest first (testedAt, then request
  id), each with `final` (its report is final on chain: only final records cap the site's offers,
  since the oracles read them from finalized reports), and `latest`, the newest final record;
* `capability` on a site meter's DeviceOut: that same latest final record, or null.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from protocol.capability import CapabilityRecord
from protocol.statuses import IndexedReportStatus

log = logging.getLogger(__name__)

MAX_RECORDS = 200  # served per site, newest first


def capability_rows(request_id: int, verification: dict[str, Any] | None) -> list[dict[str, Any]]:
    """capability_records rows of one request's verification (none unless it is a capability test)."""
    if not isinstance(verification, dict) or verification.get("capabilityTest") is not True:
        return []
    items = verification.get("capability")
    if not isinstance(items, list):
        return []
    rows, seen = [], set()
    try:
        for item in items:
            record = CapabilityRecord.from_json(item)
            if record.request_id != request_id or record.site in seen or record.tested_w > 2**63 - 1 \
                    or not 0 <= record.tested_at <= 2**63 - 1:
                raise ValueError(f"record {item!r} is not this request's, is listed twice or is out of range")
            seen.add(record.site)
            rows.append({"request_id": request_id, "site": record.site, "tested_w": record.tested_w,
                         "passed": record.passed, "tested_at": record.tested_at})
    except (ValueError, TypeError, AttributeError) as error:
        log.warning("request %d: capability records left out: %s", request_id, str(error)[:300])
        return []
    return rows


def _record(row: Any) -> dict[str, Any]:
    return {"site": row.site, "requestId": row.request_id, "testedW": row.tested_w, "passed": bool(row.passed),
            "testedAt": row.tested_at}


_SELECT = ("SELECT c.site, c.request_id, c.tested_w, c.passed, c.tested_at, r.status AS status "
           "FROM capability_records c JOIN reports r ON r.digest = c.digest "
           "WHERE r.status != :discarded AND c.site {match} "
           "ORDER BY c.tested_at DESC, c.request_id DESC")


def site_capability(engine: Engine, site: str) -> dict[str, Any]:
    """A site's records, newest first, and its latest final one (module docstring)."""
    with engine.connect() as connection:
        rows = connection.execute(text(_SELECT.format(match="= :site") + " LIMIT :limit"),
                                  {"site": site, "discarded": IndexedReportStatus.DISCARDED.value,
                                   "limit": MAX_RECORDS}).all()
    records = [{**_record(row), "final": row.status == IndexedReportStatus.FINAL.value} for row in rows]
    latest = next(({k: v for k, v in r.items() if k != "final"} for r in records if r["final"]), None)
    return {"site": site, "latest": latest, "records": records}


def latest_capabilities(engine: Engine, sites: list[str]) -> dict[str, dict[str, Any]]:
    """Each of `sites`' latest final record (sites without one are absent)."""
    if not sites:
        return {}
    names = {f"s{i}": site for i, site in enumerate(sites)}
    match = "IN (" + ", ".join(f":{name}" for name in names) + ")"
    with engine.connect() as connection:
        rows = connection.execute(text(_SELECT.format(match=match)),
                                  {**names, "discarded": IndexedReportStatus.DISCARDED.value}).all()
    latest: dict[str, dict[str, Any]] = {}
    for row in rows:
        if row.status == IndexedReportStatus.FINAL.value and row.site not in latest:
            latest[row.site] = _record(row)
    return latest
