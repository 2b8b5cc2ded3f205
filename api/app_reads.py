"""Reads for the web app's views: an owner's events, a request's plotted series, the oracles.

The rule: every figure comes from the chain mirror or from a document the chain's roots confirmed
(api.documents, api.allocation_documents); nothing here estimates. An owner's events are its
settlement units (a site, or a device settled on its own) in each request, newest request first:

    with a verified report for the request   its group (control: held out; treatment: dispatched),
                                             committed and delivered Wh, the owner's payout and the
                                             oracles' reasons, from the report's units;
    before the report, after the clearing    the verified allocation's lines: the watts accepted from
                                             each of the unit's devices, or held out;

so `decision` is `dispatched`, `held_out` or `reported` (in a report, settled but neither dispatched
nor held out: e.g. it committed and the clearing accepted nothing from it).
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine

from api.reads import BadCursor, decode_cursor, encode_cursor
from protocol.kinds import KIND_NAMES, DeviceKind

_FALLBACK_KIND = DeviceKind.HOUSEHOLD.label
RECENT_REPORTS = 500  # the newest reports searched for each oracle's last one
_UNIT_KEYS = (
    "SELECT u.request_id AS request_id, u.unit AS unit FROM report_units u "
    "JOIN requests r ON r.id = u.request_id AND r.report_digest = u.digest WHERE u.owner = :owner "
    "UNION "
    "SELECT a.request_id AS request_id, a.site AS unit FROM allocation_units a "
    "JOIN requests r ON r.id = a.request_id AND r.allocation_root = a.root "
    "JOIN devices d ON d.address = a.device WHERE d.owner = :owner"
)


def _all(engine: Engine, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(text(sql), params))


def owner_events(engine: Engine, owner: str, cursor: str | None, limit: int) -> dict[str, Any]:
    """A page of the owner's settlement units per request (module docstring), newest request first."""
    clause, params = "", {"owner": owner, "limit": limit + 1}
    if cursor is not None:
        request_id, unit = decode_cursor(cursor, (int, str))
        if len(unit) != 42 or not unit.startswith("0x"):
            raise BadCursor("not a cursor this API returned")
        clause = "WHERE k.request_id < :rid OR (k.request_id = :rid AND k.unit > :unit)"
        params.update(rid=request_id, unit=unit)
    keys = _all(engine, f"SELECT k.request_id, k.unit FROM ({_UNIT_KEYS}) k {clause} "
                        "ORDER BY k.request_id DESC, k.unit ASC LIMIT :limit", **params)
    page = [(row.request_id, row.unit) for row in keys[:limit]]
    if not page:
        return {"items": [], "next": None}
    ids = sorted({request_id for request_id, _ in page})
    marks = ", ".join(f":id{i}" for i in range(len(ids)))
    id_params = {f"id{i}": value for i, value in enumerate(ids)}
    requests = {row.id: row for row in _all(
        engine, f'SELECT id, zone, start, "end", status, payment_token FROM requests WHERE id IN ({marks})',
        **id_params)}
    reported = {(row.request_id, row.unit): row for row in _all(
        engine, "SELECT u.request_id, u.unit, u.committed_wh, u.delivered_wh, u.owner_payout, u.eligible, u.reasons, "
                "s.group_name FROM report_units u JOIN requests r ON r.id = u.request_id AND r.report_digest = u.digest "
                "LEFT JOIN report_sites s ON s.digest = u.digest AND s.request_id = u.request_id AND s.site = u.unit "
                f"WHERE u.owner = :owner AND u.request_id IN ({marks})", owner=owner, **id_params)}
    lines: dict[tuple[int, str], list[Any]] = {}
    for row in _all(engine, "SELECT a.request_id, a.device, a.site, a.group_name, a.watts, d.kind FROM allocation_units a "
                            "JOIN requests r ON r.id = a.request_id AND r.allocation_root = a.root "
                            "JOIN devices d ON d.address = a.device "
                            f"WHERE d.owner = :owner AND a.request_id IN ({marks}) ORDER BY a.device",
                    owner=owner, **id_params):
        lines.setdefault((row.request_id, row.site), []).append(row)
    units = sorted({unit for _, unit in page})
    unit_marks = ", ".join(f":u{i}" for i in range(len(units)))
    kinds = {row.address: row.kind for row in _all(
        engine, f"SELECT address, kind FROM devices WHERE address IN ({unit_marks})",
        **{f"u{i}": value for i, value in enumerate(units)})}
    items = [_event(requests[rid], unit, reported.get((rid, unit)), lines.get((rid, unit), []), kinds.get(unit))
             for rid, unit in page]
    next_cursor = encode_cursor(*page[-1]) if len(keys) > limit else None
    return {"items": items, "next": next_cursor}


def _kind(kind: int | None) -> str | None:
    return None if kind is None else KIND_NAMES.get(kind, _FALLBACK_KIND)


def _event(request: Any, unit: str, reported: Any, lines: list[Any], unit_kind: int | None) -> dict[str, Any]:
    accepted = [line for line in lines if line.group_name == "treatment"]
    held_out = any(line.group_name == "control" for line in lines)
    accepted_w = sum(line.watts for line in accepted) if lines else None
    if reported is not None:
        group = reported.group_name
        if group == "control":
            decision = "held_out"
        elif accepted_w or (accepted_w is None and reported.committed_wh > 0):
            decision = "dispatched"
        else:
            decision = "reported"
    else:
        group = "control" if held_out else "treatment"
        decision = "held_out" if held_out else "dispatched"
    return {
        "requestId": request.id, "zone": request.zone, "start": request.start, "end": request.end,
        "requestStatus": request.status, "paymentToken": request.payment_token,
        "unit": unit, "unitKindName": _kind(unit_kind), "group": group, "decision": decision,
        "acceptedW": accepted_w,
        "devices": [{"device": line.device, "kindName": _kind(line.kind), "acceptedW": line.watts} for line in accepted],
        "settled": reported is not None,
        "committedWh": reported.committed_wh if reported is not None else None,
        "deliveredWh": reported.delivered_wh if reported is not None else None,
        "payout": reported.owner_payout if reported is not None else None,
        "eligible": bool(reported.eligible) if reported is not None else None,
        "reasons": json.loads(reported.reasons) if reported is not None else [],
    }


def request_series(engine: Engine, request_id: int) -> dict[str, Any] | str | None:
    """The per-interval energy of each holdout group of a settled request, with the portfolio estimate:
    None for an unknown request, "not_settled" while it has no verified document with series."""
    found = _all(engine, 'SELECT r.id, r.start, r."end", r.report_digest, rr.verification FROM requests r '
                         "LEFT JOIN report_requests rr ON rr.digest = r.report_digest AND rr.request_id = r.id "
                         "WHERE r.id = :id", id=request_id)
    if not found:
        return None
    request = found[0]
    rows = _all(engine, "SELECT group_name, units, baseline_wh, actual_wh FROM report_series "
                        "WHERE digest = :digest AND request_id = :id ORDER BY group_name DESC",
                digest=request.report_digest, id=request_id) if request.report_digest else []
    if not rows:
        return "not_settled"
    groups = [{"group": row.group_name, "sites": row.units, "baselineWh": json.loads(row.baseline_wh),
               "actualWh": json.loads(row.actual_wh)} for row in rows]
    intervals = max(len(g["baselineWh"]) for g in groups)
    verification = json.loads(request.verification) if request.verification else {}
    return {"requestId": request_id, "start": request.start, "end": request.end,
            "intervalSeconds": (request.end - request.start) // intervals if intervals else 0,
            "groups": groups, "estimatedWh": verification.get("estimatedWh"), "ci95Wh": verification.get("ci95Wh"),
            "rule": verification.get("rule"), "fallbackReason": verification.get("fallbackReason")}


def oracles(engine: Engine) -> list[dict[str, Any]]:
    """The OracleHub's oracles, each with the newest report it submitted or signed (of the newest
    RECENT_REPORTS reports)."""
    rows = _all(engine, "SELECT address, url, active FROM oracles ORDER BY address")
    recent = _all(engine, "SELECT digest, epoch, status, submitter, signers, submitted_block, challenge_deadline "
                          f"FROM reports ORDER BY submitted_block DESC, epoch DESC LIMIT {RECENT_REPORTS}")
    signed = [(report, report.submitter.lower(), {s.lower() for s in json.loads(report.signers)}) for report in recent]
    out = []
    for row in rows:
        last = None
        me = row.address.lower()
        for report, submitter, signers in signed:
            if submitter == me or me in signers:
                last = {"digest": report.digest, "epoch": report.epoch, "status": report.status,
                        "submittedBlock": report.submitted_block, "challengeDeadline": report.challenge_deadline,
                        "role": "submitter" if submitter == me else "signer"}
                break
        out.append({"address": row.address, "url": row.url, "active": bool(row.active), "lastReport": last})
    return out
