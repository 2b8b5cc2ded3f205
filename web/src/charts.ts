// Hand-written SVG charts: step lines on labelled axes with units. Positions are floats (pixels);
// every figure printed on a chart comes from the API's integers, formatted by format.ts.

import { formatUnits } from "viem";
import type { RequestSeries, SupplyCurve, Token } from "./api";
import { hhmm } from "./format";

const SVG = "http://www.w3.org/2000/svg";
const M = { left: 64, right: 16, top: 16, bottom: 48 };

/** The chart's drawing width in SVG units: the page's width on a phone (so text keeps its size), 640 above. */
function chartWidth(): number {
  return Math.round(Math.min(640, Math.max(320, (typeof window === "undefined" ? 640 : window.innerWidth) - 40)));
}

export interface StepSeries { label: string; color: string; dashed?: boolean; points: [number, number][]; testid?: string }
interface Axis { min: number; max: number; label: string; ticks: { value: number; label: string }[] }

function el(tag: string, attrs: Record<string, string | number>, text?: string): SVGElement {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

/** About `count` round tick values covering [min, max] (1, 2 or 5 times a power of ten apart). */
export function niceTicks(min: number, max: number, count = chartWidth() < 480 ? 4 : 5): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) out.push(Number(v.toPrecision(12)));
  return out;
}

/** A chart of step series on two labelled axes; the legend lists each series. */
export function stepChart(title: string, x: Axis, y: Axis, series: StepSeries[], testid: string): HTMLElement {
  const W = chartWidth(), H = W < 480 ? 260 : 300;
  const sx = (v: number) => M.left + ((v - x.min) / (x.max - x.min || 1)) * (W - M.left - M.right);
  const sy = (v: number) => H - M.bottom - ((v - y.min) / (y.max - y.min || 1)) * (H - M.top - M.bottom);
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "chart", "data-testid": testid,
                          preserveAspectRatio: "xMidYMid meet" });
  svg.appendChild(el("title", {}, title));
  for (const t of y.ticks) {
    svg.appendChild(el("line", { x1: M.left, x2: W - M.right, y1: sy(t.value), y2: sy(t.value), class: "grid" }));
    svg.appendChild(el("text", { x: M.left - 6, y: sy(t.value) + 4, "text-anchor": "end", class: "tick" }, t.label));
  }
  for (const t of x.ticks) {
    svg.appendChild(el("line", { x1: sx(t.value), x2: sx(t.value), y1: H - M.bottom, y2: H - M.bottom + 5, class: "axis" }));
    svg.appendChild(el("text", { x: sx(t.value), y: H - M.bottom + 18, "text-anchor": "middle", class: "tick" }, t.label));
  }
  svg.appendChild(el("line", { x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom, class: "axis" }));
  svg.appendChild(el("line", { x1: M.left, x2: M.left, y1: M.top, y2: H - M.bottom, class: "axis" }));
  svg.appendChild(el("text", { x: (M.left + W - M.right) / 2, y: H - 8, "text-anchor": "middle", class: "axis-label" }, x.label));
  svg.appendChild(el("text", { x: 14, y: (M.top + H - M.bottom) / 2, "text-anchor": "middle", class: "axis-label",
                               transform: `rotate(-90 14 ${(M.top + H - M.bottom) / 2})` }, y.label));
  for (const s of series) {
    if (!s.points.length) continue;
    const d = s.points.map(([px, py], i) => `${i ? "L" : "M"}${sx(px).toFixed(1)},${sy(py).toFixed(1)}`).join(" ");
    svg.appendChild(el("path", { d, fill: "none", stroke: s.color, "stroke-width": 2.5,
                                 ...(s.dashed ? { "stroke-dasharray": "6 4" } : {}), ...(s.testid ? { "data-testid": s.testid } : {}) }));
  }
  const legend = document.createElement("ul");
  legend.className = "legend";
  for (const s of series) {
    const item = document.createElement("li");
    const swatch = document.createElement("span");
    swatch.className = s.dashed ? "swatch dashed" : "swatch";
    swatch.style.borderColor = s.color;
    item.append(swatch, s.label);
    legend.appendChild(item);
  }
  const figure = document.createElement("figure");
  figure.className = "chart-figure";
  const caption = document.createElement("figcaption");
  caption.textContent = title;
  figure.append(caption, svg, legend);
  return figure;
}

/** A step path for values held over consecutive spans: [x0,v0] -> [x1,v0] -> [x1,v1] -> ... */
function steps(xs: number[], values: number[]): [number, number][] {
  const out: [number, number][] = [];
  values.forEach((v, i) => { out.push([xs[i], v], [xs[i + 1], v]); });
  return out;
}

/** A zone's forecast supply curve: x = kW the sites hold at or below a price, y = price per kWh in the
 * token's units. Each price step starts where the previous one's kW end (merit order). */
export function supplyChart(supply: SupplyCurve, token: Token | undefined): HTMLElement {
  const decimals = token?.decimals ?? 0;
  const symbol = token?.symbol ?? "base units";
  const prices = supply.curve.map((p) => Number(formatUnits(BigInt(p.price), decimals)));
  const kws = supply.curve.map((p) => p.watts / 1000);
  const points: [number, number][] = [];
  let from = 0;
  supply.curve.forEach((_, i) => { points.push([from, prices[i]], [kws[i], prices[i]]); from = kws[i]; });
  const xMax = Math.max(1, ...kws) * 1.05, yMax = Math.max(1e-9, ...prices) * 1.15;
  const x: Axis = { min: 0, max: xMax, label: "power available through the window (kW)",
                    ticks: niceTicks(0, xMax).map((v) => ({ value: v, label: String(v) })) };
  const y: Axis = { min: 0, max: yMax, label: `price (${symbol}/kWh)`,
                    ticks: niceTicks(0, yMax).map((v) => ({ value: v, label: String(v) })) };
  return stepChart(`Zone ${supply.zone} forecast supply: kW offered at or below each price (${supply.sites} sites)`, x, y,
    [{ label: "supply (kW at or below the price)", color: "#1565c0", points }], `zone-${supply.zone}-supply-chart`);
}

const GROUP_COLORS: Record<string, string> = { treatment: "#c62828", control: "#2e7d32" };
const GROUP_NAMES: Record<string, string> = { treatment: "dispatched", control: "held out" };

/** A settled request's groups per interval, in kW (Wh per interval / interval hours): each group's
 * actual load (solid) and baseline (dashed), from `GET /v1/requests/{id}/series`. */
export function seriesChart(series: RequestSeries): HTMLElement {
  const n = Math.max(0, ...series.groups.map((g) => g.actualWh.length));
  const xs = Array.from({ length: n + 1 }, (_, i) => series.start + i * series.intervalSeconds);
  const toKw = (wh: number) => (wh * 3600) / series.intervalSeconds / 1000;
  const lines: StepSeries[] = [];
  for (const g of series.groups) {
    const name = `${GROUP_NAMES[g.group] ?? g.group} (${g.sites} site${g.sites === 1 ? "" : "s"})`;
    lines.push({ label: `${name}: baseline`, color: GROUP_COLORS[g.group] ?? "#555", dashed: true,
                 points: steps(xs, g.baselineWh.map(toKw)), testid: `series-${g.group}-baseline` });
    lines.push({ label: `${name}: actual`, color: GROUP_COLORS[g.group] ?? "#555",
                 points: steps(xs, g.actualWh.map(toKw)), testid: `series-${g.group}-actual` });
  }
  const all = series.groups.flatMap((g) => [...g.baselineWh, ...g.actualWh]).map(toKw);
  const yMax = Math.max(0.001, ...all) * 1.1, yMin = Math.min(0, ...all);
  const tickEvery = Math.max(1, Math.ceil(n / 6));
  const x: Axis = { min: series.start, max: series.start + n * series.intervalSeconds, label: "time (UTC)",
                    ticks: xs.filter((_, i) => i % tickEvery === 0).map((v) => ({ value: v, label: hhmm(v) })) };
  const y: Axis = { min: yMin, max: yMax, label: "average power (kW)",
                    ticks: niceTicks(yMin, yMax).map((v) => ({ value: v, label: String(v) })) };
  return stepChart(`Request ${series.requestId}: load per ${series.intervalSeconds / 60}-minute interval against the baseline`,
    x, y, lines, `request-${series.requestId}-series-chart`);
}
