"""The Central System's side of one charger connection, per OCPP version (the `ocpp` library's
ChargePoint with the handlers a home Central System needs: boot, heartbeat, status, authorize,
transactions and meter values; every charger and token is accepted, as on a private home network)."""

from __future__ import annotations

import itertools
import logging

from ocpp.routing import on
from ocpp.v16 import ChargePoint as ChargePoint16
from ocpp.v16 import call_result as result16
from ocpp.v16.enums import Action as Action16
from ocpp.v201 import ChargePoint as ChargePoint201
from ocpp.v201 import call_result as result201
from ocpp.v201.enums import Action as Action201

from node.drivers.ocpp_time import utc_now

_transaction_ids = itertools.count(1)
# The ocpp library logs every message at INFO; a gateway's log keeps them only at DEBUG (-v).
MESSAGES = logging.getLogger("negawatt.node.drivers.ocpp.messages")
if MESSAGES.level == logging.NOTSET:
    MESSAGES.setLevel(logging.WARNING)


class CentralSession16(ChargePoint16):
    """OCPP 1.6J, Central System side."""

    def __init__(self, charger, connection):
        super().__init__(charger.settings.charge_point_id, connection, response_timeout=charger.settings.timeout_seconds,
                         logger=MESSAGES)
        self.charger = charger

    @on(Action16.boot_notification)
    def on_boot(self, **_):
        return result16.BootNotification(current_time=utc_now(), interval=60, status="Accepted")

    @on(Action16.heartbeat)
    def on_heartbeat(self, **_):
        return result16.Heartbeat(current_time=utc_now())

    @on(Action16.status_notification)
    def on_status(self, status=None, **_):
        self.charger.status = status
        return result16.StatusNotification()

    @on(Action16.authorize)
    def on_authorize(self, **_):
        return result16.Authorize(id_tag_info={"status": "Accepted"})

    @on(Action16.start_transaction)
    def on_start(self, **_):
        return result16.StartTransaction(transaction_id=next(_transaction_ids), id_tag_info={"status": "Accepted"})

    @on(Action16.stop_transaction)
    def on_stop(self, transaction_data=None, **_):
        if transaction_data:
            self.charger.on_meter_values(transaction_data)
        return result16.StopTransaction(id_tag_info={"status": "Accepted"})

    @on(Action16.meter_values)
    def on_meter_values(self, meter_value=None, **_):
        self.charger.on_meter_values(meter_value or [])
        return result16.MeterValues()


class CentralSession201(ChargePoint201):
    """OCPP 2.0.1, Central System (CSMS) side."""

    def __init__(self, charger, connection):
        super().__init__(charger.settings.charge_point_id, connection, response_timeout=charger.settings.timeout_seconds,
                         logger=MESSAGES)
        self.charger = charger

    @on(Action201.boot_notification)
    def on_boot(self, **_):
        return result201.BootNotification(current_time=utc_now(), interval=60, status="Accepted")

    @on(Action201.heartbeat)
    def on_heartbeat(self, **_):
        return result201.Heartbeat(current_time=utc_now())

    @on(Action201.status_notification)
    def on_status(self, connector_status=None, **_):
        self.charger.status = connector_status
        return result201.StatusNotification()

    @on(Action201.authorize)
    def on_authorize(self, **_):
        return result201.Authorize(id_token_info={"status": "Accepted"})

    @on(Action201.transaction_event)
    def on_transaction_event(self, meter_value=None, **_):
        if meter_value:
            self.charger.on_meter_values(meter_value)
        return result201.TransactionEvent()

    @on(Action201.meter_values)
    def on_meter_values(self, meter_value=None, **_):
        self.charger.on_meter_values(meter_value or [])
        return result201.MeterValues()
