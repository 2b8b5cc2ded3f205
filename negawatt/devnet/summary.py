"""The demo's summary: the verdict first (requested vs delivered, with the estimate's 95 % interval),
then per zone the holdout (sites committed, held out, paid), payouts per owner, gas spent, a plot of
the dispatched group and the held-out group against their baselines, and `summary.json`. Everything
is read back from the chain and from the report the oracles published, not from what the devnet
intended."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from negawatt.devnet.network import Devnet
from negawatt.devnet.scenario import EventRun, published_report


@dataclass
class ZoneSummary:
    zone: int
    request_id: int
    requested_kw: float
    committed_kw: float
    delivered_kw: float  # average over the window
    delivered_wh: int
    devices: int
    eligible: int
    escrow: int
    paid: int
    refunded: int
    baseline_wh: list[int] = field(default_factory=list)  # per interval, summed over the dispatched sites
    actual_wh: list[int] = field(default_factory=list)
    held_out_baseline_wh: list[int] = field(default_factory=list)  # per interval, the held-out sites
    held_out_actual_wh: list[int] = field(default_factory=list)
    estimated_wh: int | None = None  # the portfolio estimate of the dispatched group's reduction
    ci95_wh: tuple[int, int] | None = None
    rule: str = "device"  # portfolio, site_fallback, or device (settled per device, no sites)
    fallback_reason: str | None = None
    not_used: dict | None = None  # the portfolio estimate its placebo gate refused (shown, not paid on)
    placebo_rrmse: float | None = None  # the portfolio's prediction error on its placebo days
    sites_committed: int = 0
    sites_held_out: int = 0
    sites_paid: int = 0
    hours: float = 1.0
    forecast_w: int | None = None  # the zone's forecast supply at the ceiling, which the buyer sized on
    accepted_w: int = 0  # the allocation: accepted power, uniform clearing price, offer tranches
    clearing_price: int = 0
    availability_price: int = 0  # the allocation's uniform availability price per kW per hour
    offers: int = 0
    control_sites: int = 0
    curtailed_unaccepted: int = 0  # devices curtailed without a verified acceptance
    buyer_verdict: str | None = None  # the first line of `negawatt buyer status`
    owners: int = 0  # the zone's node owners, and how many of them this request paid
    owners_paid: int = 0

    @property
    def unneeded_w(self) -> int:
        """Verified delivery above 110 % of the request: accepted capacity that was not needed."""
        return max(0, self.delivered_w - round(self.requested_kw * 1_000 * 1.1))

    @property
    def delivered_w(self) -> int:
        """The verified reduction, as average W over the window (the estimate when there is one)."""
        energy = self.estimated_wh if self.estimated_wh is not None else self.delivered_wh
        return round(energy / self.hours)

    @property
    def delivered_ci95_w(self) -> list[int] | None:
        """The 95 % interval of the verified reduction (None when nothing was verified)."""
        if self.ci95_wh is None or self.rule == "none":
            return None
        return [round(v / self.hours) for v in self.ci95_wh]


@dataclass
class OwnerSummary:
    owner: str
    node: str
    devices: int
    delivered_wh: int
    payout: int  # payment token (owner's share)
    emission: int
    penalty: int  # protocol token, slashed from the owner's stake for under-delivery
    claimed_payment: int
    claimed_protocol: int


@dataclass
class Summary:
    zones: list[ZoneSummary]
    owners: list[OwnerSummary]
    gas_by_role: dict[str, tuple[int, int]]  # role -> (transactions, gas)
    report: dict[str, Any]
    plot: Path | None = None


def summarize(net: Devnet, run: EventRun) -> Summary:
    """Collect the summary from the published report of the event's epoch and from the chain."""
    report = published_report(net, run.epoch)
    hours = (run.end - run.start) / 3_600
    zones = []
    by_request = {r["requestId"]: r for r in report["requests"]}
    for zone, request_id in sorted(run.request_ids.items()):
        settled = by_request.get(request_id)
        if settled is None:
            continue
        devices = settled["devices"]
        delivered_wh = sum(d["deliveredWh"] for d in devices)
        length = net.spec.event_intervals
        verification = settled.get("verification") or {}
        groups = {entry["site"].lower(): entry["group"] for entry in verification.get("sites", [])}
        series = {"treatment": ([0] * length, [0] * length), "control": ([0] * length, [0] * length)}
        for record in settled.get("baselines", []):
            group = groups.get(record["device"].lower(), "treatment")
            baseline, actual = series[group]
            for t in range(min(length, len(record["baseline_wh"] or []))):
                baseline[t] += record["baseline_wh"][t]
                actual[t] += max(0, record["actual_wh"][t])
        portfolio = verification.get("portfolio") or {}
        zones.append(ZoneSummary(
            zone=zone, request_id=request_id, requested_kw=run.targets_w[zone] / 1_000,
            committed_kw=sum(d["committedWh"] for d in devices if "held_out" not in d["reasons"]) / 1_000 / hours,
            delivered_kw=delivered_wh / 1_000 / hours, delivered_wh=delivered_wh,
            devices=len(devices), eligible=sum(1 for d in devices if d["eligible"]),
            escrow=int(settled["escrow"]), paid=int(settled["payout"]), refunded=int(settled["refund"]),
            baseline_wh=series["treatment"][0], actual_wh=series["treatment"][1],
            held_out_baseline_wh=series["control"][0], held_out_actual_wh=series["control"][1],
            estimated_wh=portfolio.get("estimated_wh"),
            ci95_wh=tuple(portfolio["ci95_wh"]) if portfolio.get("ci95_wh") else None,
            rule=portfolio.get("rule", "device" if not verification else "no_estimate"),
            fallback_reason=portfolio.get("fallback_reason") or verification.get("error"),
            not_used=portfolio.get("not_used"), placebo_rrmse=(portfolio.get("quality") or {}).get("rrmse"),
            sites_committed=len(groups) if groups else len(devices),
            sites_held_out=sum(1 for g in groups.values() if g == "control"),
            sites_paid=sum(1 for d in devices if int(d["payout"]) > 0), hours=hours,
            forecast_w=run.forecast_w.get(zone),
            accepted_w=int((run.allocations.get(zone) or {}).get("acceptedW", 0)),
            clearing_price=int((run.allocations.get(zone) or {}).get("clearingPrice", 0)),
            availability_price=int((run.allocations.get(zone) or {}).get("availabilityPrice", 0)),
            buyer_verdict=(run.buyer_status.get(zone) or {}).get("verdict"),
            offers=int((run.allocations.get(zone) or {}).get("offers", 0)),
            control_sites=len((run.allocations.get(zone) or {}).get("controlSites", [])),
            curtailed_unaccepted=len(run.applied_devices - run.accepted_devices) if run.allocations else 0,
            owners=len({n.owner.lower() for n in net.nodes if n.zone == zone}),
            owners_paid=len({d["owner"].lower() for d in devices if int(d["ownerPayout"]) > 0}),
        ))
    owners = []
    stablecoin, token = net.manifest.address("MockStablecoin"), net.manifest.address("NegawattToken")
    delivered: dict[str, int] = defaultdict(int)
    payout: dict[str, int] = defaultdict(int)
    emission: dict[str, int] = defaultdict(int)
    penalty: dict[str, int] = defaultdict(int)
    for request in report["requests"]:
        for device in request["devices"]:
            delivered[device["owner"]] += device["deliveredWh"]
            payout[device["owner"]] += int(device["ownerPayout"])
            emission[device["owner"]] += int(device["emission"])
            penalty[device["owner"]] += int(device["penalty"])
    for node in net.nodes:
        claimed = run.claimed.get(node.owner, {})
        owners.append(OwnerSummary(node.owner, node.name, len(node.devices), delivered[node.owner], payout[node.owner],
                                   emission[node.owner], penalty[node.owner], claimed.get(stablecoin, 0),
                                   claimed.get(token, 0)))
    return Summary(zones, owners, gas_spent(net), report)


def write_json(summary: Summary, path: Path) -> Path:
    """`summary.json`: per zone the request, commitment, verified delivery (average W) with its 95 %
    interval, the holdout and the money; per owner what was paid and claimed (base units)."""
    import json

    body = {
        "zones": [{"zone": z.zone, "request_id": z.request_id, "fill_ratio": round(z.delivered_w / (z.requested_kw * 1_000), 4)
                   if z.requested_kw else None, "owners": z.owners, "owners_paid": z.owners_paid, "requested_w": round(z.requested_kw * 1_000),
                   "committed_w": round(z.committed_kw * 1_000), "delivered_w": z.delivered_w,
                   "delivered_ci95_w": z.delivered_ci95_w, "rule": z.rule, "fallback_reason": z.fallback_reason,
                   "sites_committed": z.sites_committed, "sites_held_out": z.sites_held_out,
                   "placebo_rrmse": z.placebo_rrmse,
                   "portfolio_estimate_not_used_w": None if not z.not_used else round(z.not_used["estimated_wh"] / z.hours),
                   "portfolio_estimate_not_used_ci95_w": None if not z.not_used else
                   [round(v / z.hours) for v in z.not_used["ci95_wh"]],
                   "forecast_w": z.forecast_w, "offers": z.offers, "accepted_w": z.accepted_w,
                   "clearing_price": str(z.clearing_price), "availability_price": str(z.availability_price),
                   "control_sites": z.control_sites, "buyer_status": z.buyer_verdict,
                   "unneeded_w": z.unneeded_w, "curtailed_without_acceptance": z.curtailed_unaccepted,
                   "sites_paid": z.sites_paid, "escrow": str(z.escrow), "paid": str(z.paid),
                   "refunded": str(z.refunded)} for z in summary.zones],
        "owners": [{"owner": o.owner, "node": o.node, "paid": str(o.payout), "emission": str(o.emission),
                    "penalty": str(o.penalty), "claimed": {"payment": str(o.claimed_payment),
                                                           "protocol": str(o.claimed_protocol)}}
                   for o in summary.owners],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(body, indent=2) + "\n")
    return path


def gas_spent(net: Devnet) -> dict[str, tuple[int, int]]:
    """Transactions and gas per role since the deployment, from every block's receipts."""
    roles = {net.admin.address: "deployer/admin", net.buyer.address: "buyer"}
    roles.update({o.address: "oracles" for o in net.oracles})
    roles.update({n.owner: "node owners" for n in net.nodes})
    totals: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    latest = net.web3.eth.block_number
    for number in range(0, latest + 1):
        receipts = net.web3.provider.make_request("eth_getBlockReceipts", [hex(number)]).get("result") or []
        for receipt in receipts:
            role = roles.get(net.web3.to_checksum_address(receipt["from"]), "other")
            totals[role][0] += 1
            totals[role][1] += int(receipt["gasUsed"], 16)
    return {role: (count, gas) for role, (count, gas) in totals.items()}


def plot(summary: Summary, net: Devnet, path: Path) -> Path:
    """A PNG per zone: on top the verdict as bars (requested, accepted, verified kW with its 95 %
    interval, and a refused estimate hatched, labelled as not paid on); below, the dispatched and the
    held-out sites' load against their baselines (kW) over the event's intervals."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    interval = net.spec.interval_seconds
    to_kw = 3_600 / interval / 1_000
    columns = max(1, len(summary.zones))
    figure, axes = plt.subplots(2, columns, figsize=(6.5 * columns, 8), squeeze=False,
                                gridspec_kw={"height_ratios": [1, 1.4]})
    for column, zone in enumerate(summary.zones):
        _verdict_bars(axes[0][column], zone)
        axis = axes[1][column]
        minutes = [k * interval / 60 for k in range(len(zone.baseline_wh) + 1)]

        def step(values: list[int], label: str, **style: Any) -> None:
            if values and any(values):
                axis.step(minutes, [w * to_kw for w in values] + [values[-1] * to_kw], where="post", label=label,
                          **style)

        dispatched = zone.sites_committed - zone.sites_held_out
        step(zone.baseline_wh, f"dispatched ({dispatched} sites): baseline", linewidth=2, color="tab:blue",
             linestyle="--")
        step(zone.actual_wh, f"dispatched ({dispatched} sites): actual", linewidth=2, color="tab:blue")
        step(zone.held_out_baseline_wh, f"held out ({zone.sites_held_out} sites): baseline", linewidth=1.5,
             color="tab:orange", linestyle="--")
        step(zone.held_out_actual_wh, f"held out ({zone.sites_held_out} sites): actual", linewidth=1.5,
             color="tab:orange")
        axis.set_title(f"site-meter load of the two groups; rule {zone.rule}"
                       + (f" ({zone.fallback_reason})" if zone.fallback_reason else ""), fontsize=9)
        axis.set_xlabel("minutes into the event")
        axis.set_ylabel("site-meter load (kW)")
        axis.set_ylim(bottom=0)
        axis.legend(fontsize=8)
    figure.suptitle("negawatt devnet: requested vs verified flexibility, and the groups it was measured on")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    summary.plot = path
    return path


def _verdict_bars(axis: Any, zone: ZoneSummary) -> None:
    """Requested, accepted and verified kW side by side; the verified bar carries its 95 % interval,
    and an estimate the quality gate refused is drawn hatched and labelled as not paid on."""
    labels = ["requested", "accepted", "verified (paid on)"]
    values = [zone.requested_kw, zone.accepted_w / 1_000, zone.delivered_w / 1_000 if zone.rule != "none" else 0.0]
    colors = ["tab:gray", "tab:green", "tab:blue"]
    bars = axis.bar(labels, values, color=colors)
    if zone.delivered_ci95_w:
        lo, hi = (v / 1_000 for v in zone.delivered_ci95_w)
        axis.errorbar([2], [values[2]], yerr=[[values[2] - lo], [hi - values[2]]], color="black", capsize=6)
    if zone.not_used:
        estimate = zone.not_used["estimated_wh"] / zone.hours / 1_000
        lo, hi = (v / zone.hours / 1_000 for v in zone.not_used["ci95_wh"])
        axis.bar(["estimate (not paid on)"], [estimate], color="white", edgecolor="tab:blue", hatch="//")
        axis.errorbar([3], [estimate], yerr=[[estimate - lo], [hi - estimate]], color="black", capsize=6)
    for bar, value in zip(bars, values):
        axis.annotate(f"{value:.1f}", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom",
                      fontsize=8)
    fill = 100 * values[2] / zone.requested_kw if zone.requested_kw else 0.0
    axis.set_title(f"zone {zone.zone}, request {zone.request_id}: {fill:.0f} % of the request verified; "
                   f"{zone.sites_paid} sites paid", fontsize=10)
    axis.set_ylabel("kW (average over the window)")
    axis.axhline(zone.requested_kw, color="tab:gray", linewidth=0.8, linestyle=":")


ZONE_COLUMNS = (
    "requested kW: the buyer's target. committed kW: what the dispatched sites signed to deliver. "
    "verified kW: the reduction the settlement rule measured (average over the window; 0 when the rule is "
    "none). 95 % CI kW: its confidence interval. sites (held out): committed sites, and how many the "
    "randomized draw held out as the control group. paid sites: sites with a payout. escrow, paid, "
    "refunded: the buyer's money (mUSD): escrowed at opening, paid to owners and the protocol, returned.")
OWNER_COLUMNS = (
    "delivered Wh: the owner's verified share of the reduction. payout mUSD: the owner's share of the "
    "payment. emission NEGA: protocol tokens earned. penalty NEGA: stake slashed for under-delivery. "
    "claimed: what the node has claimed from the reward root so far.")


def render(summary: Summary, console: Any) -> None:
    """Print the summary as rich tables."""
    from rich.table import Table

    for z in summary.zones:
        fill = 100 * z.delivered_w / 1000 / z.requested_kw if z.requested_kw else 0.0
        console.print(f"[bold]Verdict, zone {z.zone}: {fill:.0f} % of the request verified[/] (requested "
                      f"{z.requested_kw:.1f} kW, verified {z.delivered_w / 1000:.1f} kW"
                      + (f", 95 % CI {z.delivered_ci95_w[0] / 1000:.1f} to {z.delivered_ci95_w[1] / 1000:.1f} kW"
                         if z.delivered_ci95_w else ", no confidence interval: nothing verified") + "); "
                      f"{z.owners_paid} of {z.owners} owners paid; rule {z.rule}"
                      + (f" ({z.fallback_reason})" if z.fallback_reason else "")
                      + f"; {z.sites_paid} of {z.sites_committed - z.sites_held_out} dispatched sites paid")
        if z.offers:
            console.print(f"  clearing: {z.offers} offer tranches"
                          + (f" (forecast supply {z.forecast_w / 1000:.1f} kW)" if z.forecast_w else "")
                          + f", {z.accepted_w / 1000:.1f} kW accepted at {z.clearing_price / 1e6:.3f} mUSD/kWh"
                          + (f" + {z.availability_price / 1e6:.3f} mUSD/kW·h availability"
                             if z.availability_price else "") + ", "
                          f"{z.control_sites} sites in the control group; "
                          f"{z.curtailed_unaccepted} devices curtailed without acceptance; "
                          f"{z.unneeded_w / 1000:.1f} kW delivered beyond 110 % of the request")
        if z.not_used:
            lo, hi = (v / z.hours / 1000 for v in z.not_used["ci95_wh"])
            console.print(f"  the portfolio estimate was {z.not_used['estimated_wh'] / z.hours / 1000:.1f} kW "
                          f"(95 % CI {lo:.1f} to {hi:.1f} kW, {z.sites_committed - z.sites_held_out} dispatched vs "
                          f"{z.sites_held_out} held-out sites), not paid on: its placebo-day error "
                          f"(RRMSE {100 * (z.placebo_rrmse or 0):.0f} %) is above the 20 % gate")
    earned = sum(1 for o in summary.owners if o.payout > 0)
    console.print(f"[bold]Owners:[/] {earned} of {len(summary.owners)} earned a payout")
    zones = Table(title="Requested vs delivered, per zone", caption=ZONE_COLUMNS, caption_justify="left")
    for column in ("zone", "request", "requested kW", "committed kW", "verified kW", "95 % CI kW",
                   "sites (held out)", "paid sites", "escrow mUSD", "paid mUSD", "refunded mUSD"):
        zones.add_column(column, justify="right")
    for z in summary.zones:
        ci = f"{z.delivered_ci95_w[0] / 1000:.1f}..{z.delivered_ci95_w[1] / 1000:.1f}" if z.delivered_ci95_w else "-"
        zones.add_row(str(z.zone), str(z.request_id), f"{z.requested_kw:.1f}", f"{z.committed_kw:.1f}",
                      f"{z.delivered_w / 1000:.1f}", ci, f"{z.sites_committed} ({z.sites_held_out})", str(z.sites_paid),
                      f"{z.escrow / 1e6:.4f}", f"{z.paid / 1e6:.4f}", f"{z.refunded / 1e6:.4f}")
    console.print(zones)
    owners = Table(title="Payouts per owner (owner's 80% share; emission and under-delivery penalties in NEGA)",
                   caption=OWNER_COLUMNS, caption_justify="left")
    for column in ("node", "owner", "devices", "delivered Wh", "payout mUSD", "emission NEGA", "penalty NEGA",
                   "claimed mUSD", "claimed NEGA"):
        owners.add_column(column, justify="right")
    for o in summary.owners:
        owners.add_row(o.node, o.owner[:10] + "…", str(o.devices), str(o.delivered_wh), f"{o.payout / 1e6:.4f}",
                       f"{o.emission / 1e18:.4f}", f"{o.penalty / 1e18:.4f}", f"{o.claimed_payment / 1e6:.4f}",
                       f"{o.claimed_protocol / 1e18:.4f}")
    console.print(owners)
    gas = Table(title="Gas spent on the devnet, by role", caption="transactions and gas used since the deployment, "
                "from every block's receipts, by the sender's role", caption_justify="left")
    for column in ("role", "transactions", "gas"):
        gas.add_column(column, justify="right")
    for role, (count, used) in sorted(summary.gas_by_role.items()):
        gas.add_row(role, str(count), f"{used:,}")
    console.print(gas)


def api_zone_stats(net: Devnet, run: EventRun, timeout: float = 60) -> dict[int, dict]:
    """What the API serves at /v1/zones/{zone}/stats once its indexer has seen the settlement (and
    verified the oracles' document); the demo prints it next to the oracles' figures."""
    import httpx

    from negawatt.devnet.network import wait_for

    if not net.api_url:
        return {}

    def fetch() -> dict[int, dict] | None:
        stats = {}
        for zone in run.request_ids:
            try:
                response = httpx.get(f"{net.api_url}/v1/zones/{zone}/stats", timeout=5)
            except httpx.HTTPError:
                return None
            if response.status_code != 200 or response.json()["settledRequests"] < 1:
                return None
            stats[zone] = response.json()
        return stats

    return wait_for(fetch, timeout, "the API to index the settlement", net.group)


def render_api(stats: dict[int, dict], summary: Summary, console: Any) -> None:
    """Print the API's view of each zone beside the report's."""
    from rich.table import Table

    table = Table(title="The same event as the API serves it (GET /v1/zones/{zone}/stats)")
    for column in ("zone", "devices", "active capacity kW", "settled requests", "delivered kWh (API)",
                   "delivered kWh (report)", "paid mUSD (API)"):
        table.add_column(column, justify="right")
    by_zone = {z.zone: z for z in summary.zones}
    for zone, body in sorted(stats.items()):
        paid = sum(int(p["amount"]) for p in body["paid"])
        report_kwh = by_zone[zone].delivered_wh / 1_000 if zone in by_zone else 0.0
        table.add_row(str(zone), str(body["devices"]), f"{body['activeCapacityW'] / 1000:.1f}",
                      str(body["settledRequests"]), f"{body['deliveredKWh']:.3f}", f"{report_kwh:.3f}",
                      f"{paid / 1e6:.4f}")
    console.print(table)
