// Pieces the views share: a section with a heading, a status line, the chain's clock.

import { h } from "../dom";
import { publicClient } from "../wallet";

/** A titled section of a view with a stable test id. */
export function section(title: string, testid: string, ...body: (Node | string)[]): HTMLElement {
  return h("section", { class: "card", "data-testid": testid }, h("h2", {}, title), ...body);
}

/** The chain's clock: the latest block's timestamp (the clock FlexMarket checks windows against);
 * the browser's clock only when the chain cannot be read, flagged as such. */
export async function chainNow(): Promise<{ now: number; fromChain: boolean }> {
  try {
    const client = await publicClient();
    const block = await client.getBlock({ blockTag: "latest" });
    return { now: Number(block.timestamp), fromChain: true };
  } catch {
    return { now: Math.floor(Date.now() / 1000), fromChain: false };
  }
}

/** Unix seconds as the value of an `<input type="datetime-local">` read as UTC ("YYYY-MM-DDTHH:MM"). */
export function toInputUtc(seconds: number): string {
  return new Date(seconds * 1000).toISOString().slice(0, 16);
}

/** An `<input type="datetime-local">` value read as UTC, in unix seconds (null when malformed). */
export function fromInputUtc(value: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/.exec(value.trim());
  if (!m) return null;
  const ms = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], m[6] ? +m[6] : 0);
  return Number.isFinite(ms) ? ms / 1000 : null;
}
