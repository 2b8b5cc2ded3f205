"""The VEN flow with the stock openadr3-client: register a VEN and a resource, read events, post
usage reports, try to read another client's objects.

    python ven.py VTN_JSON register --ven NAME --resource NAME
    python ven.py VTN_JSON events
    python ven.py VTN_JSON report --event ID --resource NAME --start ISO --kwh 1.0,1.1,...
    python ven.py VTN_JSON peek --ven-id ID --report-id ID
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta

from common import emit, http_error, ven_client
from openadr3_client._models.common.interval import Interval
from openadr3_client._models.common.interval_period import IntervalPeriod
from openadr3_client.oadr310.models.report.report import NewReport, ReportResource
from openadr3_client.oadr310.models.report.report_payload import ReportPayload, ReportPayloadType
from openadr3_client.oadr310.models.resource.resource import NewResourceVenRequest
from openadr3_client.oadr310.models.ven.ven import NewVenVenRequest
from requests import HTTPError


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("vtn_json")
    parser.add_argument("command", choices=["register", "events", "report", "peek"])
    parser.add_argument("--ven")
    parser.add_argument("--resource")
    parser.add_argument("--event")
    parser.add_argument("--start")
    parser.add_argument("--kwh", default="")
    parser.add_argument("--ven-id")
    parser.add_argument("--report-id")
    args = parser.parse_args()
    client = ven_client(args.vtn_json)
    try:
        if args.command == "register":
            ven = client.vens.create_ven(NewVenVenRequest(ven_name=args.ven))
            resource = client.resources.create_resource(NewResourceVenRequest(resource_name=args.resource,
                                                                              ven_id=ven.id))
            site = {a.type: list(a.values) for a in resource.attributes or ()}.get("NEGAWATT_SITE")
            emit({"status": 201, "ven_id": ven.id, "resource_id": resource.id, "site": site})
        elif args.command == "events":
            events = client.events.get_events(target=None, pagination=None, program_id=None)
            emit({"status": 200, "events": [
                {"id": e.id, "programID": e.program_id, "start": e.interval_period.start.isoformat(),
                 "payloads": [{"type": p.type, "values": list(p.values)}
                              for i in e.intervals or () for p in i.payloads]}
                for e in events]})
        elif args.command == "report":
            values = [float(v) for v in args.kwh.split(",") if v]
            report = client.reports.create_report(NewReport(
                event_id=args.event, client_name=args.ven or "ven", report_name="usage",
                resources=(ReportResource(
                    resource_name=args.resource,
                    interval_period=IntervalPeriod(start=datetime.fromisoformat(args.start),
                                                   duration=timedelta(minutes=15)),
                    intervals=tuple(Interval(id=n, payloads=(ReportPayload(type=ReportPayloadType.USAGE,
                                                                           values=(v,)),))
                                    for n, v in enumerate(values))),)))
            emit({"status": 201, "id": report.id, "clientID": report.client_id})
        elif args.command == "peek":
            seen = {}
            for name, call in (("ven", lambda: client.vens.get_ven_by_id(args.ven_id)),
                               ("report", lambda: client.reports.get_report_by_id(args.report_id)),
                               ("vens", lambda: client.vens.get_vens(ven_name=None, target=None, pagination=None))):
                try:
                    found = call()
                    seen[name] = [v.id for v in found] if isinstance(found, tuple) else 200
                except HTTPError as error:
                    seen[name] = error.response.status_code
            emit({"status": 200, "seen": seen})
    except HTTPError as error:
        emit(http_error(error))


if __name__ == "__main__":
    main()
