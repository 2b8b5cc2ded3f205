"""The Business Logic flow with the stock openadr3-client: create a programme and an event, read the
result report, delete an event.

    python bl.py VTN_JSON program --zone 1 --ceiling 0.30 --name NAME
    python bl.py VTN_JSON event --program ID --start ISO --minutes 60 --kw 5 [--type DISPATCH_SETPOINT_RELATIVE]
    python bl.py VTN_JSON results --event ID
    python bl.py VTN_JSON delete --event ID
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta

from common import bl_client, emit, http_error
from openadr3_client._models.common.attribute import Attribute
from openadr3_client._models.common.interval import Interval
from openadr3_client._models.common.interval_period import IntervalPeriod
from openadr3_client.oadr310.models.event.event import NewEvent
from openadr3_client.oadr310.models.event.event_payload import EventPayload, EventPayloadType
from openadr3_client.oadr310.models.program.program import NewProgram
from requests import HTTPError


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("vtn_json")
    parser.add_argument("command", choices=["program", "event", "results", "delete"])
    parser.add_argument("--zone", type=int, default=1)
    parser.add_argument("--ceiling", default="0.30")
    parser.add_argument("--name", default="negawatt-zone")
    parser.add_argument("--program")
    parser.add_argument("--event")
    parser.add_argument("--start")
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--kw", type=float, default=5.0)
    parser.add_argument("--type", default="DISPATCH_SETPOINT_RELATIVE")
    args = parser.parse_args()
    client = bl_client(args.vtn_json)
    try:
        if args.command == "program":
            program = client.programs.create_program(NewProgram(
                program_name=args.name,
                attributes=(Attribute(type="NEGAWATT_ZONE", values=(args.zone,)),
                            Attribute(type="NEGAWATT_PRICE_CEILING", values=(args.ceiling,)))))
            emit({"status": 201, "id": program.id,
                  "attributes": [a.model_dump(mode="json") for a in program.attributes or ()]})
        elif args.command == "event":
            value = -args.kw if args.type == "DISPATCH_SETPOINT_RELATIVE" else args.kw
            event = client.events.create_event(NewEvent(
                program_id=args.program, event_name="evening-peak",
                interval_period=IntervalPeriod(start=datetime.fromisoformat(args.start),
                                               duration=timedelta(minutes=args.minutes)),
                intervals=(Interval(id=0, payloads=(EventPayload(type=EventPayloadType(args.type),
                                                                 values=(value,)),)),)))
            emit({"status": 201, "id": event.id, "programID": event.program_id})
        elif args.command == "results":
            reports = client.reports.get_reports(pagination=None, program_id=None, event_id=args.event,
                                                 client_name=None)
            emit({"status": 200, "reports": [
                {"id": r.id, "reportName": r.report_name, "clientID": r.client_id,
                 "payloads": {p.type: list(p.values) for res in r.resources for i in res.intervals
                              for p in i.payloads}} for r in reports]})
        elif args.command == "delete":
            deleted = client.events.delete_event_by_id(args.event)
            emit({"status": 200, "id": deleted.id})
    except HTTPError as error:
        emit(http_error(error))


if __name__ == "__main__":
    main()
