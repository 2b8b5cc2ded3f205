// #/network: zones (capacity, forecast supply), live requests (SSE), settled events with their plot,
// and the oracles. Every figure is one the API serves; the page only converts units.

import { all, ApiError, get, tokens, type FlexRequest, type NetworkStats, type Oracle, type RequestSeries,
  type SupplyCurve, type Token, type ZoneStats } from "../api";
import { seriesChart, supplyChart } from "../charts";
import { errorBox, h, replace, table } from "../dom";
import { kw, kwh, milli, rule, reason, short, tokenAmount, utc } from "../format";
import { onState, requestIdOf, subscribe } from "../sse";
import { chainNow, fromInputUtc, section, toInputUtc } from "./common";
import { REQUEST_HEADERS, requestRow } from "./requests";

const SETTLED_SHOWN = 5;

/** Render the network view into `root`; returns its cleanup (closes its stream subscriptions). */
export function networkView(root: HTMLElement): () => void {
  const zones = h("div", { "data-testid": "zones" }, "Loading zones…");
  const supplyWindow = h("div", { class: "row" });
  const supply = h("div", { "data-testid": "supply" });
  const live = h("span", { class: "live", "data-testid": "stream-state" }, "connecting to the live stream…");
  const requests = h("div", { "data-testid": "requests" }, "Loading requests…");
  const settled = h("div", { "data-testid": "settled" });
  const oracles = h("div", { "data-testid": "oracles" }, "Loading oracles…");
  replace(root,
    section("Zones", "zones-section", zones, h("h3", {}, "Forecast supply"), supplyWindow, supply),
    section("Requests", "requests-section", live, requests),
    section("Settled events", "settled-section", settled),
    section("Oracles", "oracles-section", oracles));

  let tokenMap = new Map<string, Token>();
  const rows = new Map<number, FlexRequest>();
  let zoneIds: number[] = [];

  const renderRequests = () => {
    const sorted = [...rows.values()].sort((a, b) => b.id - a.id);
    if (!sorted.length) { replace(requests, h("p", {}, "No requests yet.")); return; }
    const body = h("tbody", {}, ...sorted.map((r) => requestRow(r, tokenMap)));
    replace(requests, h("div", { class: "table-wrap" }, h("table", { "data-testid": "requests-table", class: "stack" },
      h("thead", {}, h("tr", {}, ...REQUEST_HEADERS.map((t) => h("th", { scope: "col" }, t)))), body)));
  };

  const loadRequests = async () => {
    try {
      const items = await all<FlexRequest>("/v1/requests?limit=100", 5);
      rows.clear();
      for (const r of items) rows.set(r.id, r);
      renderRequests();
      await renderSettled();
    } catch (error) {
      replace(requests, errorBox((error as Error).message, "requests-error"));
    }
  };

  const refetchRequest = async (id: number) => {
    try {
      const r = await get<FlexRequest>(`/v1/requests/${id}`);
      const was = rows.get(id)?.status;
      rows.set(id, r);
      renderRequests();
      if (r.status === "settled" && was !== "settled") await renderSettled();
    } catch (error) {
      if (!(error instanceof ApiError && error.status === 404)) replace(requests, errorBox((error as Error).message, "requests-error"));
    }
  };

  const renderSettled = async () => {
    const done = [...rows.values()].filter((r) => r.status === "settled").sort((a, b) => b.id - a.id).slice(0, SETTLED_SHOWN);
    if (!done.length) { replace(settled, h("p", {}, "No settled requests yet.")); return; }
    const blocks = await Promise.all(done.map((r) => settledBlock(r, tokenMap)));
    replace(settled, ...blocks);
  };

  let supplyShown = false;
  const loadZones = async () => {
    try {
      const stats = await get<NetworkStats>("/v1/stats");
      const perZone = (await get<{ items: ZoneStats[] }>("/v1/zones")).items;
      zoneIds = perZone.map((z) => z.zone);
      replace(zones,
        h("p", { "data-testid": "network-totals" },
          `${stats.activeDevices} of ${stats.devices} devices active, ${kw(stats.activeCapacityW)} active capacity, `
          + `${stats.owners} owners, ${stats.settledRequests} of ${stats.requests} requests settled, `
          + `${kwh(stats.deliveredWh)} delivered in all.`),
        table(["zone", "devices (active / registered)", "registered capacity", "active capacity", "requests (settled)", "delivered", "paid"],
          perZone.map((z) => [
            h("span", { "data-testid": `zone-${z.zone}-id` }, String(z.zone)),
            h("span", { "data-testid": `zone-${z.zone}-devices` }, `${z.activeDevices} / ${z.devices}`),
            h("span", { "data-testid": `zone-${z.zone}-registered-kw` }, kw(z.registeredCapacityW)),
            h("span", { "data-testid": `zone-${z.zone}-active-kw` }, kw(z.activeCapacityW)),
            h("span", { "data-testid": `zone-${z.zone}-requests` }, `${z.requests} (${z.settledRequests})`),
            h("span", { "data-testid": `zone-${z.zone}-delivered-kwh` }, kwh(z.deliveredWh)),
            h("span", { "data-testid": `zone-${z.zone}-paid` },
              z.paid.length ? z.paid.map((p) => tokenAmount(p.amount, tokenMap.get(p.token.toLowerCase()))).join(", ") : "nothing yet"),
          ]), { "data-testid": "zones-table", class: "stack" }));
      if (!supplyShown) {  // once: later refreshes keep the window the user chose
        supplyShown = true;
        await setupSupply();
      }
    } catch (error) {
      replace(zones, errorBox((error as Error).message, "zones-error"));
    }
  };

  const setupSupply = async () => {
    const { now, fromChain } = await chainNow();
    const start = Math.ceil((now + 1) / 3600) * 3600;
    const startInput = h("input", { type: "datetime-local", value: toInputUtc(start), "data-testid": "supply-start", "aria-label": "window start (UTC)" });
    const hoursInput = h("input", { type: "number", min: 1, max: 24, value: 1, "data-testid": "supply-hours", "aria-label": "hours" });
    const show = h("button", { type: "button", "data-testid": "supply-show" }, "Show");
    replace(supplyWindow, h("label", {}, "window from (UTC) ", startInput), h("label", {}, " for ", hoursInput, " h "), show,
      h("small", {}, fromChain ? " (the chain's clock)" : " (the browser's clock: the chain could not be read)"));
    const draw = async () => {
      const s = fromInputUtc(startInput.value);
      const hours = Number(hoursInput.value);
      if (s === null || !Number.isInteger(hours) || hours < 1) { replace(supply, errorBox("Give a start (UTC) and a whole number of hours.", "supply-error")); return; }
      replace(supply, "Loading the forecast supply…");
      const token = paymentToken(tokenMap);
      const charts = await Promise.all(zoneIds.map(async (z) => {
        try {
          const curve = await get<SupplyCurve>(`/v1/zones/${z}/supply?start=${s}&end=${s + hours * 3600}`);
          if (!curve.curve.length) return h("p", { "data-testid": `zone-${z}-supply-empty` },
            `Zone ${z}: no site has published a forecast covering ${utc(curve.start)} to ${utc(curve.end)}.`);
          return supplyChart(curve, token);
        } catch (error) {
          return errorBox(`Zone ${z}: ${(error as Error).message}`, `zone-${z}-supply-error`);
        }
      }));
      replace(supply, ...charts);
    };
    show.addEventListener("click", () => void draw());
    await draw();
  };

  const loadOracles = async () => {
    try {
      const list = await get<{ items: Oracle[] }>("/v1/oracles");
      replace(oracles, table(["oracle", "URL", "active", "last report"], list.items.map((o) => [
        h("span", { title: o.address, "data-testid": `oracle-${o.address}-address` }, short(o.address)),
        o.url || "none published",
        h("span", { "data-testid": `oracle-${o.address}-active` }, o.active ? "active" : "inactive"),
        h("span", { "data-testid": `oracle-${o.address}-last-report` }, o.lastReport
          ? `epoch ${o.lastReport.epoch}, ${o.lastReport.status}${o.lastReport.role ? ` (${o.lastReport.role})` : ""}, block ${o.lastReport.submittedBlock}`
            + `, digest ${short(o.lastReport.digest)}`
          : "no report yet"),
      ]), { "data-testid": "oracles-table", class: "stack" }));
    } catch (error) {
      replace(oracles, errorBox((error as Error).message, "oracles-error"));
    }
  };

  const unsubscribe = subscribe((kind, event) => {
    const id = requestIdOf(event);
    if (kind === "request" && id !== null) void refetchRequest(id);
    else if (kind === "report" || kind === "reorg") { void loadRequests(); void loadOracles(); }
    if (kind !== "claim") void loadZones();
  });
  const unwatch = onState((s) => {
    live.textContent = s === "open" ? "live: updates as the chain moves" : s === "error" ? "live stream lost: reconnecting…" : "connecting to the live stream…";
  });

  void (async () => {
    try {
      tokenMap = await tokens();
    } catch (error) {
      replace(zones, errorBox((error as Error).message, "tokens-error"));
    }
    await Promise.all([loadZones(), loadRequests(), loadOracles()]);
  })();
  return () => { unsubscribe(); unwatch(); };
}

/** The payment token (the first token with the `payment` role), for the supply chart's price axis. */
function paymentToken(tokenMap: Map<string, Token>): Token | undefined {
  return [...tokenMap.values()].find((t) => t.roles.includes("payment"));
}

/** One settled request: its plot from `/v1/requests/{id}/series`, the estimate with its 95 % CI in
 * words, and the figures of the plot in a table. */
async function settledBlock(r: FlexRequest, tokenMap: Map<string, Token>): Promise<HTMLElement> {
  const token = tokenMap.get(r.paymentToken.toLowerCase());
  const head = h("h3", {}, `Request #${r.id}, zone ${r.zone}, ${utc(r.start)}: paid ${tokenAmount(r.payout, token)}, refunded ${tokenAmount(r.refund, token)}`);
  let series: RequestSeries;
  try {
    series = await get<RequestSeries>(`/v1/requests/${r.id}/series`);
  } catch (error) {
    return h("article", { class: "settled", "data-testid": `request-${r.id}-settled` }, head, errorBox((error as Error).message, `request-${r.id}-series-error`));
  }
  const hours = (series.end - series.start) / 3600;
  const estimate = series.estimatedWh === null
    ? h("p", { "data-testid": `request-${r.id}-estimate` }, "No estimate could be made: nothing was verified.")
    : h("p", { "data-testid": `request-${r.id}-estimate` },
        `Verified reduction: `, h("strong", { "data-testid": `request-${r.id}-estimate-kwh` }, kwh(series.estimatedWh)),
        ` over ${hours} h (${kw(Math.round(series.estimatedWh / hours))} on average)`,
        series.ci95Wh
          ? h("span", { "data-testid": `request-${r.id}-ci` }, `, 95 % confidence interval ${milli(series.ci95Wh[0])} to ${milli(series.ci95Wh[1])} kWh`)
          : h("span", { "data-testid": `request-${r.id}-ci` }, ", no confidence interval"),
        `. Rule: ${rule(series.rule)}${series.fallbackReason ? ` (${reason(series.fallbackReason)})` : ""}.`);
  const n = Math.max(0, ...series.groups.map((g) => g.actualWh.length));
  const figures = h("details", {}, h("summary", {}, "The plot's figures (kWh per interval)"),
    table(["interval (UTC)", ...series.groups.flatMap((g) => [`${g.group === "treatment" ? "dispatched" : "held out"} baseline`, `${g.group === "treatment" ? "dispatched" : "held out"} actual`])],
      Array.from({ length: n }, (_, i) => [
        utc(series.start + i * series.intervalSeconds),
        ...series.groups.flatMap((g) => [
          h("span", { "data-testid": `request-${r.id}-${g.group}-baseline-${i}` }, kwh(g.baselineWh[i])),
          h("span", { "data-testid": `request-${r.id}-${g.group}-actual-${i}` }, kwh(g.actualWh[i])),
        ]),
      ]), { "data-testid": `request-${r.id}-series-table` }));
  const groups = h("p", {}, series.groups.map((g) => `${g.group === "treatment" ? "dispatched" : "held out"}: ${g.sites} site${g.sites === 1 ? "" : "s"}`).join("; ") || "no groups");
  return h("article", { class: "settled", "data-testid": `request-${r.id}-settled` }, head, estimate, groups, seriesChart(series), figures);
}
