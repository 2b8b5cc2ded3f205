"""What a site would offer in a future hour: the content of its day-ahead forecast (node.forecast).

The rule is the dispatcher's own, applied to a request the node imagines for that hour, in the
device's zone, at no more than the owner's price and with the gate far enough ahead:

    per flexible device d:  watts_d = decide(policy, that request, d, now, recent_d)
                            (node.dispatch.decide: the simulator's forecast of what it can shed in
                            the hour, or a real device's flexibility now, capped at max_share_bps
                            of its capacity and at recent_d, its use in that hour on recent days
                            (node.own_baseline), as a commitment is; 0 below min_commit_w)
    split as an offer:      offer_tranches(policy, ...) of each watts_d: the confident part at the
                            owner's min_price_per_kwh, the extra_share_bps part at the premium
    the site's hour:        tranche 1 = the sum of the confident parts at min_price_per_kwh,
                            tranche 2 = the sum of the extra parts at the premium price,
                            merged into one tranche when the premium equals the minimum.

So the forecast promises what the node would commit if asked, no more: a buyer that sizes a request
on it can expect these offers at the gate, give or take what the devices do before then.

Cost: the hours of a forecast are asked of each device in one pass
(`forecast_flexibility_windows_w`: a simulator plays its day forward once, not once per hour), so a
day-ahead forecast costs about one simulated day per device. It runs in the node's loop.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from node.devices.interface import DeviceUnavailable
from node.capability import capped_total
from node.dispatch import NodeDevice, Policy, decide, offer_tranches
from protocol.forecast import MAX_PRICE, Tranche
from protocol.requests import FlexRequest

Window = tuple[int, int]


def window_offers(policy: Policy, devices: Iterable[NodeDevice], windows: Sequence[Window], now: float,
                  recent_of: Callable[[str, int, int], int | None] = lambda device, start, end: None,
                  cap_w: int | None = None) -> list[list[Tranche]]:
    """The site's tranches for each of `windows` (consecutive [start, end), in time order) by the
    module's rule; an empty list for a window: nothing. `recent_of(device, start, end)` is the
    device's recent use in the window, when known. `cap_w`, the site's tested capability
    (node.capability), caps each window's total, the confident part first, as the clearing will."""
    confident = [0] * len(windows)
    extra = [0] * len(windows)
    premium = [policy.min_price_per_kwh] * len(windows)
    for device in devices:
        try:  # from the device's state now, as decide() forecasts a single window
            device.driver.advance(now)
            forecasts = device.driver.forecast_flexibility_windows_w(windows)
        except DeviceUnavailable:
            continue  # decide() would say the same for every hour: nothing offered
        for i, (start, end) in enumerate(windows):
            imagined = FlexRequest(request_id=0, zone=device.zone, start=start, end=end,
                                   target_w=device.capacity_w, price_per_kwh=MAX_PRICE,
                                   payment_token="0x" + "00" * 20)
            watts, _reason = decide(policy, imagined, device, now, recent_of(device.address, start, end),
                                    forecast_w=forecasts[i])
            if watts <= 0:
                continue
            first, _price, more, more_price = offer_tranches(policy, imagined, watts)
            confident[i] += first
            extra[i] += more
            if more:
                premium[i] = more_price
    for i in range(len(windows)):
        confident[i], extra[i] = capped_total([confident[i], extra[i]], cap_w)
    return [_tranches(policy, confident[i], extra[i], premium[i]) for i in range(len(windows))]


def _tranches(policy: Policy, confident: int, extra: int, premium: int) -> list[Tranche]:
    tranches = [Tranche(confident, policy.min_price_per_kwh)] if confident else []
    if extra:
        if tranches and premium == policy.min_price_per_kwh:
            tranches = [Tranche(confident + extra, premium)]
        else:
            tranches.append(Tranche(extra, premium))
    return tranches
