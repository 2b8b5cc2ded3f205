// Formatting of what the API serves: base-unit amounts in a token's decimals, W as kW, Wh as kWh,
// unix seconds as UTC. Exact: amounts stay bigint (viem formatUnits), never go through floats.

import { formatUnits } from "viem";
import type { Token } from "./api";

/** A decimal string of base units (the API's amount type) in token units, e.g. "307716" -> "0.307716". */
export function units(amount: string | bigint, decimals: number): string {
  return formatUnits(typeof amount === "bigint" ? amount : BigInt(amount), decimals);
}

/** An amount with its token's symbol; an unknown token is shown as base units with its address. */
export function tokenAmount(amount: string | bigint | null | undefined, token: Token | undefined): string {
  if (amount === null || amount === undefined) return "–";
  if (!token || token.decimals === null) return `${amount} base units`;
  return `${units(amount, token.decimals)} ${token.symbol ?? ""}`.trim();
}

/** Watts as kW with 3 decimals (exact: integer W / 1000). */
export function kw(watts: number | null | undefined): string {
  if (watts === null || watts === undefined) return "–";
  return `${milli(watts)} kW`;
}

/** Wh as kWh with 3 decimals (exact: integer Wh / 1000). */
export function kwh(wh: number | null | undefined): string {
  if (wh === null || wh === undefined) return "–";
  return `${milli(wh)} kWh`;
}

/** An integer in thousandths, written with 3 decimals without a float: 2024 -> "2.024", -8352 -> "-8.352". */
export function milli(value: number): string {
  const sign = value < 0 ? "-" : "";
  const abs = Math.abs(Math.trunc(value));
  return `${sign}${Math.floor(abs / 1000)}.${String(abs % 1000).padStart(3, "0")}`;
}

/** Average power over a window from energy: Wh / hours, as kW (3 decimals). Delivered kW of a request. */
export function averageKw(wh: number | null | undefined, seconds: number): string {
  if (wh === null || wh === undefined || seconds <= 0) return "–";
  return kw(Math.round((wh * 3600) / seconds));
}

/** Unix seconds as "YYYY-MM-DD HH:MM UTC". */
export function utc(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return "–";
  return new Date(seconds * 1000).toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

/** Unix seconds as "HH:MM" (UTC), for chart ticks. */
export function hhmm(seconds: number): string {
  return new Date(seconds * 1000).toISOString().slice(11, 16);
}

/** A window as "start – end (N min)". */
export function window(start: number, end: number): string {
  return `${utc(start)} – ${hhmm(end)} (${Math.round((end - start) / 60)} min)`;
}

/** An address or hash shortened for a table cell: 0x1234…abcd. */
export function short(hex: string | null | undefined): string {
  if (!hex) return "–";
  return hex.length > 12 ? `${hex.slice(0, 6)}…${hex.slice(-4)}` : hex;
}

const REASONS: Record<string, string> = {
  held_out: "held out by the randomized draw (control group)",
  insufficient_history: "not enough metered history for a baseline",
  insufficient_history_for_quality: "not enough history to test the baseline's accuracy",
  missing_adjustment_readings: "readings missing in the hours before the event",
  missing_event_readings: "readings missing during the event",
  baseline_quality: "its baseline was not accurate enough on placebo days",
  device_inactive: "the device was inactive",
  bond_insufficient: "its bond did not cover its capacity",
  not_accepted: "its offer was not accepted at the clearing price",
  holdout_too_small: "too few held-out sites for an estimate",
  no_holdout: "no sites were held out",
};

/** An oracle reason code in words (the code itself when it is not one this page knows). */
export function reason(code: string): string {
  return REASONS[code] ?? code.replace(/_/g, " ");
}

const DECISIONS: Record<string, string> = {
  dispatched: "dispatched (curtailed)",
  held_out: "held out (control group, not curtailed)",
  not_accepted: "offered, not accepted",
  reported: "in the report, neither dispatched nor held out",
};

/** A participation decision in words. */
export function decision(code: string): string {
  return DECISIONS[code] ?? code.replace(/_/g, " ");
}

const RULES: Record<string, string> = {
  portfolio: "portfolio estimate (dispatched against held-out sites)",
  site_fallback: "each site against its own baseline (site-level fallback)",
  none: "no rule could be applied: nothing verified",
};

/** A settlement rule in words. */
export function rule(code: string | null | undefined): string {
  if (!code) return "–";
  return RULES[code] ?? code.replace(/_/g, " ");
}
