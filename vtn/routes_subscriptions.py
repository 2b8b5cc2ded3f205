"""`/subscriptions`: who is notified of which operations on which objects (vtn.notify).

The rule: a client reads and changes only its own subscriptions (BL clients read all); every
callback must pass vtn.callback_policy (http(s), no userinfo, a public address or one the operator
allows), else the create or replace is a 400 problem naming the rule and nothing is stored;
notifications follow the privacy rule of the subscriber.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query

from vtn import crud
from vtn.callback_policy import CallbackRefused
from vtn.deps import CallerGrant, Context, Pagination, TargetFilter, VtnContext, require
from vtn.models import ObjectKind, SubscriptionIn, wire
from vtn.problems import VtnProblem

router = APIRouter(tags=["subscriptions"])
KIND = "SUBSCRIPTION"


def _body(subscription: SubscriptionIn) -> dict:
    return {"objectType": KIND, **wire(subscription)}


def _check_callbacks(context: VtnContext, subscription: SubscriptionIn) -> None:
    """400 problem naming the member and the rule when the policy refuses a callback."""
    for n, item in enumerate(subscription.object_operations):
        try:
            context.notifier.check_callback(str(item.callback_url))
        except CallbackRefused as error:
            raise VtnProblem(400, "Callback URL Refused",
                             f"objectOperations.{n}.callbackUrl refused ({error.rule}): {error.detail}") from None


@router.get("/subscriptions")
def search_subscriptions(context: Context, grant: CallerGrant, page: Pagination, targets: TargetFilter,
                         programID: Annotated[str | None, Query(max_length=128)] = None,
                         clientName: Annotated[str | None, Query(max_length=128)] = None,
                         objects: Annotated[list[ObjectKind] | None, Query(max_length=6)] = None) -> list[dict]:
    """The subscriptions the caller may read."""
    require(grant, "read_all", "read_ven_objects")
    rows = crud.list_bodies(context, grant, KIND, page, targets, program_id=programID, name=clientName)
    if objects:
        wanted = {item.value for item in objects}
        rows = [body for body in rows
                if any(wanted.intersection(op.get("objects", [])) for op in body.get("objectOperations", []))]
    return rows


@router.post("/subscriptions", status_code=201)
def create_subscription(context: Context, grant: CallerGrant,
                        subscription: Annotated[SubscriptionIn, Body()]) -> dict:
    """Subscribe to notifications (write_subscriptions)."""
    require(grant, "write_subscriptions")
    crud.check_quota(context, grant.client_id)
    _check_callbacks(context, subscription)
    served = context.store.create(KIND, grant.client_id, _body(subscription), program_id=subscription.program_id,
                                  name=subscription.client_name, targets=subscription.targets)
    crud.notify(context, KIND, "POST", served["id"])
    return served


@router.get("/subscriptions/{subscriptionID}")
def get_subscription(context: Context, grant: CallerGrant, subscriptionID: str) -> dict:
    """One subscription."""
    require(grant, "read_all", "read_ven_objects")
    return crud.readable(context, grant, KIND, subscriptionID)["body"]


@router.put("/subscriptions/{subscriptionID}")
def update_subscription(context: Context, grant: CallerGrant, subscriptionID: str,
                        subscription: Annotated[SubscriptionIn, Body()]) -> dict:
    """Replace a subscription."""
    require(grant, "write_subscriptions")
    crud.writable(context, grant, KIND, subscriptionID)
    _check_callbacks(context, subscription)
    served = context.store.replace(KIND, subscriptionID, _body(subscription), program_id=subscription.program_id,
                                   name=subscription.client_name, targets=subscription.targets)
    crud.notify(context, KIND, "PUT", subscriptionID)
    return served


@router.delete("/subscriptions/{subscriptionID}")
def delete_subscription(context: Context, grant: CallerGrant, subscriptionID: str) -> dict:
    """Delete a subscription."""
    require(grant, "write_subscriptions")
    return crud.delete(context, KIND, crud.writable(context, grant, KIND, subscriptionID))
