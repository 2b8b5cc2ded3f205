"""Webhook notifications: every create (POST), update (PUT) and delete (DELETE) of an object is sent
to each subscription that asked for that object type and operation.

The rule: a subscription is notified only of objects its own client may read (the privacy rule of
vtn.deps), of its program when it names one, and of objects carrying one of its targets when it
names targets. The notification is the spec's `{"objectType", "operation", "object", "targets"}`,
POSTed to `callbackUrl` with `Authorization: Bearer <bearerToken>` when the subscription gave one,
from a small worker pool so a slow callback never holds a request; a failed POST is logged, not
retried (MQTT notifiers are not implemented).

Before each POST the callback is checked again by vtn.callback_policy (the host resolved now), and
the POST goes to the address that was checked, the name in the Host header and TLS SNI: a name that
rebinds to an internal address after the subscription was accepted is not reached. No redirect is
followed, no connection is kept alive (a pooled one could serve another name on the same address),
and the response body is never read (the status line and headers only, within the timeout).
"""

from __future__ import annotations

import logging
import ssl
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from vtn.callback_policy import CallbackPolicy, CallbackRefused
from vtn.clients import Role
from vtn.tokens import Grant

log = logging.getLogger(__name__)


class Notifier:
    """Finds the subscriptions an operation concerns and POSTs to their callbacks."""

    def __init__(self, timeout_seconds: float = 5.0, workers: int = 4, policy: CallbackPolicy | None = None,
                 verify: ssl.SSLContext | bool = True):
        self.policy = policy or CallbackPolicy()
        self._http = httpx.Client(timeout=timeout_seconds, follow_redirects=False, verify=verify,
                                  limits=httpx.Limits(max_keepalive_connections=0))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vtn-notify")
        self.context: Any = None  # set by the app (the store and the privacy rule live there)

    def close(self) -> None:
        """Finish the pending notifications and stop."""
        self._pool.shutdown(wait=True, cancel_futures=False)
        self._http.close()

    def changed(self, kind: str, operation: str, row: dict[str, Any]) -> None:
        """`row` (a stored object) was created, updated or deleted: notify who asked."""
        if self.context is None:
            return
        from vtn.deps import may_read

        program_id = row.get("program_id") or (row["id"] if kind == "PROGRAM" else None)
        for subscription in self.context.store.query("SUBSCRIPTION", limit=10_000):
            body = subscription["body"]
            if body.get("programID") and body["programID"] != program_id:
                continue
            if body.get("targets") and not set(body["targets"]).intersection(row.get("targets") or []):
                continue
            client = self.context.registry.clients.get(subscription["client_id"])
            if client is None:
                continue
            grant = Grant(client.client_id, client.role, frozenset({"read_all"}) if client.role is Role.BL
                          else frozenset({"read_targets", "read_ven_objects"}), float("inf"))
            if not may_read(self.context, grant, kind, row):
                continue
            for item in body.get("objectOperations", []):
                if kind in item.get("objects", []) and operation in item.get("operations", []):
                    notification = {"objectType": kind, "operation": operation, "object": row["body"],
                                    "targets": row.get("targets") or []}
                    self._pool.submit(self.send, item["callbackUrl"], item.get("bearerToken"), notification)

    def check_callback(self, url: str) -> None:
        """Raise CallbackRefused (naming the rule) unless the policy lets notifications go to `url` now."""
        self.policy.check(url)

    def send(self, url: str, token: str | None, notification: dict[str, Any]) -> int | None:
        """POST one notification now (the worker pool calls this): the callback checked again, the POST to
        the checked address; the HTTP status, or None when refused or failed (logged either way)."""
        try:
            target = self.policy.check(url)
        except CallbackRefused as error:
            log.warning("notification to %s not sent: the callback policy refuses it (%s)", url, error)
            return None
        headers = {**target.headers, **({"Authorization": f"Bearer {token}"} if token else {})}
        try:
            with self._http.stream("POST", target.url, json=notification, headers=headers,
                                   extensions=target.extensions) as response:
                status = response.status_code  # the body is not read: closing drops the connection
            log.info("notified %s (%s) of %s %s: HTTP %d", url, target.address, notification["operation"],
                     notification["objectType"], status)
            return status
        except httpx.HTTPError as error:
            log.warning("notification to %s (%s) failed: %s", url, target.address, error)
            return None
