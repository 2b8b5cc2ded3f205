// A request as a table row or a detail list, shared by the network and the buyer views: requested,
// accepted and delivered kW, the ceiling, payout and refund, as the API serves them.

import type { FlexRequest, Token } from "../api";
import { h, type Child } from "../dom";
import { averageKw, kw, tokenAmount, window as windowText } from "../format";

export const REQUEST_HEADERS = ["request", "zone", "window", "status", "requested", "accepted", "delivered",
  "ceiling per kWh", "payout", "refund"];

/** The cells of one request's row; each figure carries `request-<id>-<field>` as its test id. */
export function requestCells(r: FlexRequest, tokens: Map<string, Token>): Child[] {
  const token = tokens.get(r.paymentToken.toLowerCase());
  const id = (field: string) => `request-${r.id}-${field}`;
  return [
    h("span", { "data-testid": id("id") }, `#${r.id}`),
    h("span", { "data-testid": id("zone") }, String(r.zone)),
    h("span", { "data-testid": id("window") }, windowText(r.start, r.end)),
    h("span", { "data-testid": id("status"), class: `status status-${r.status}` }, r.status),
    h("span", { "data-testid": id("requested-kw") }, kw(r.targetW)),
    h("span", { "data-testid": id("accepted-kw") }, r.acceptedW === null || r.acceptedW === undefined ? "not cleared yet" : kw(r.acceptedW)),
    h("span", { "data-testid": id("delivered-kw") }, r.deliveredWh === null ? "not settled yet" : averageKw(r.deliveredWh, r.end - r.start)),
    h("span", { "data-testid": id("ceiling") }, tokenAmount(r.pricePerKWh, token)),
    h("span", { "data-testid": id("payout") }, tokenAmount(r.payout, token)),
    h("span", { "data-testid": id("refund") }, tokenAmount(r.refund, token)),
  ];
}

/** The table row of one request (test id `request-<id>-row`). */
export function requestRow(r: FlexRequest, tokens: Map<string, Token>): HTMLTableRowElement {
  return h("tr", { "data-testid": `request-${r.id}-row` }, ...requestCells(r, tokens).map((c, i) =>
    h("td", { "data-label": REQUEST_HEADERS[i] }, c)));
}
