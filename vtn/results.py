"""The market's answer as OpenADR reports: each event that opened a request gets one report, written
by the facade (clientID `negawatt-vtn`, reportName `negawatt-result`), that the BL client reads
with GET /reports?eventID=.

The rule: the report has one resource `negawatt-request-<id>` over the event's window and one
interval whose payloads state the request as the chain and the API see it:

    NEGAWATT_REQUEST_ID [id]           NEGAWATT_STATUS ["open" | "cancelled" | "settling" | "settled" | "expired"]
    NEGAWATT_REQUESTED_KW [kW]         NEGAWATT_ACCEPTED_KW [kW]  (once the allocation is posted)
    NEGAWATT_DELIVERED_KWH [estimate, ci95 low, ci95 high]  (once the API has the verified report)
    NEGAWATT_ESCROW, NEGAWATT_PAID, NEGAWATT_REFUNDED  [token units, decimal text]

It is refreshed every `poll_seconds` and rewritten (with a PUT notification) only when it changed.
The status and amounts come from FlexMarket.getRequest, the accepted power from AllocationPosted,
the delivered energy and its interval from the API's `/v1/requests/{id}` when an API is configured.
"""

from __future__ import annotations

import logging
import threading
from decimal import Decimal
from typing import Any

import httpx
from eth_utils import event_abi_to_log_topic

from protocol.events import EventDecoder
from vtn.clients import FACADE_CLIENT_ID

log = logging.getLogger(__name__)

REPORT_NAME = "negawatt-result"


def _units(amount: int, decimals: int) -> str:
    return format(Decimal(amount) / (Decimal(10) ** decimals), "f")


def _kw(watts: int) -> float:
    return watts / 1000


class Results:
    """Builds and refreshes the result reports."""

    def __init__(self, store: Any, market: Any, notifier: Any, api_url: str | None, timeout: float = 5.0):
        self.store = store
        self.market = market
        self.notifier = notifier
        self.api_url = api_url.rstrip("/") if api_url else None
        self._http = httpx.Client(timeout=timeout)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, poll_seconds: float) -> None:
        """Refresh every result in a background thread."""
        self._thread = threading.Thread(target=self._run, args=(poll_seconds,), name="vtn-results", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the refresh thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._http.close()

    def _run(self, poll_seconds: float) -> None:
        while not self._stop.wait(poll_seconds):
            try:
                self.refresh_all()
            except Exception:  # a failing RPC or API must not end the loop
                log.exception("refreshing the results failed")

    def refresh_all(self) -> None:
        """Refresh the result of every event that opened a request."""
        for link in self.store.linked_requests():
            self.refresh(link)

    def _allocation_w(self, request_id: int) -> int | None:
        flex = self.market.flex
        abi = next(item for item in flex.abi if item.get("type") == "event" and item["name"] == "AllocationPosted")
        logs = self.market.web3.eth.get_logs({
            "address": flex.address, "fromBlock": self.market.manifest.contracts["FlexMarket"].block,
            "toBlock": "latest", "topics": ["0x" + event_abi_to_log_topic(abi).hex(),
                                            "0x" + int(request_id).to_bytes(32, "big").hex()]})
        decoder = EventDecoder.for_contract(flex, "FlexMarket", events=("AllocationPosted",))
        for raw in reversed(logs):
            event = decoder.decode(raw)
            if event is not None:
                return int(event.args["acceptedW"])
        return None

    def _verification(self, request_id: int) -> dict[str, Any] | None:
        if not self.api_url:
            return None
        try:
            response = self._http.get(f"{self.api_url}/v1/requests/{int(request_id)}")
        except httpx.HTTPError:
            return None
        if response.status_code != 200:
            return None
        body = response.json()
        return body.get("verification") if isinstance(body, dict) else None

    def result_of(self, request_id: int) -> dict[str, Any] | None:
        """The request's result as payloads (a list of {type, values}), or None when it is unknown."""
        request = self.market.request(request_id)
        if request is None:
            return None
        decimals = self.market.decimals
        payloads = [{"type": "NEGAWATT_REQUEST_ID", "values": [int(request_id)]},
                    {"type": "NEGAWATT_STATUS", "values": [request["status"]]},
                    {"type": "NEGAWATT_REQUESTED_KW", "values": [_kw(request["targetW"])]}]
        if request["allocated"]:
            accepted = self._allocation_w(request_id)
            if accepted is not None:
                payloads.append({"type": "NEGAWATT_ACCEPTED_KW", "values": [_kw(accepted)]})
        verification = self._verification(request_id)
        if verification and verification.get("estimatedWh") is not None:
            low, high = (verification.get("ci95Wh") or [None, None])[:2]
            values = [verification["estimatedWh"] / 1000]
            if low is not None and high is not None:
                values += [low / 1000, high / 1000]
            payloads.append({"type": "NEGAWATT_DELIVERED_KWH", "values": values})
        payloads += [{"type": "NEGAWATT_ESCROW", "values": [_units(request["escrow"], decimals)]},
                     {"type": "NEGAWATT_PAID", "values": [_units(request["paid"], decimals)]},
                     {"type": "NEGAWATT_REFUNDED", "values": [_units(request["refunded"], decimals)]}]
        return {"payloads": payloads, "start": request["start"], "end": request["end"]}

    def refresh(self, link: dict[str, Any]) -> None:
        """Write the result report of one event's request when it changed."""
        result = self.result_of(link["request_id"])
        if result is None:
            return
        import json

        if link.get("result") and json.loads(link["result"]) == result:
            return
        event = self.store.get("EVENT", link["event_id"])
        program_id = event["program_id"] if event else None
        body = _report_body(link["event_id"], program_id, link["request_id"], result)
        if link.get("result_report_id") and self.store.get("REPORT", link["result_report_id"]):
            served = self.store.replace("REPORT", link["result_report_id"], body, program_id=program_id,
                                        event_id=link["event_id"], name=REPORT_NAME)
            operation, report_id = "PUT", link["result_report_id"]
        else:
            served = self.store.create("REPORT", FACADE_CLIENT_ID, body, program_id=program_id,
                                       event_id=link["event_id"], name=REPORT_NAME)
            operation, report_id = "POST", served["id"]
        self.store.set_result(link["event_id"], report_id, result)
        row = self.store.get("REPORT", report_id)
        if row is not None:
            self.notifier.changed("REPORT", operation, row)


def _report_body(event_id: str, program_id: str | None, request_id: int, result: dict[str, Any]) -> dict[str, Any]:
    from datetime import UTC, datetime

    from vtn.models import iso

    start = datetime.fromtimestamp(result["start"], UTC)
    seconds = result["end"] - result["start"]
    body = {"objectType": "REPORT", "eventID": event_id, "clientName": FACADE_CLIENT_ID,
            "clientID": FACADE_CLIENT_ID, "reportName": REPORT_NAME,
            "resources": [{"resourceName": f"negawatt-request-{request_id}",
                           "intervalPeriod": {"start": iso(start), "duration": f"PT{seconds}S"},
                           "intervals": [{"id": 0, "payloads": result["payloads"]}]}]}
    if program_id:
        body["programID"] = program_id
    return body
