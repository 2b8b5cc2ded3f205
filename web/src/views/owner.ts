// #/owner: a device owner's sites and devices, the events they took part in, their rewards and a
// Claim button sending RewardDistributor.claimMany with the proofs the API serves.

import type { Address, Hex } from "viem";
import { rewardDistributorAbi } from "../abi";
import { all, get, send, tokens, type Device, type OwnerEvent, type Rewards, type Token } from "../api";
import { errorBox, h, replace, table } from "../dom";
import { decision, kw, kwh, reason, short, tokenAmount, utc, window as windowText } from "../format";
import { subscribe } from "../sse";
import { sessionFor, signIn } from "../siwe";
import { describeError, onWallet, publicClient, wallet, type Wallet } from "../wallet";
import { section } from "./common";
import { connectPanel } from "./connect";

/** Render the owner view into `root`; returns its cleanup. */
export function ownerView(root: HTMLElement): () => void {
  const panel = connectPanel();
  const body = h("div", { "data-testid": "owner-body" });
  replace(root, section("Your wallet", "owner-wallet", panel.element), body);
  let disposeOwner: (() => void) | null = null;
  const stop = onWallet((w) => {
    disposeOwner?.();
    disposeOwner = null;
    if (!w) replace(body, h("p", { class: "hint" }, "Connect a wallet to see your devices, events and rewards."));
    else disposeOwner = ownerBody(body, w);
  });
  return () => { stop(); disposeOwner?.(); panel.dispose(); };
}

function ownerBody(body: HTMLElement, w: Wallet): () => void {
  const address = w.address;
  const devices = h("div", { "data-testid": "owner-devices" }, "Loading devices…");
  const events = h("div", { "data-testid": "owner-events" }, "Loading events…");
  const rewards = h("div", { "data-testid": "owner-rewards" }, "Loading rewards…");
  const claimStatus = h("div", { "data-testid": "claim-status", "aria-live": "polite" });
  replace(body,
    section("Rewards", "rewards-section", rewards, claimStatus),
    section("Sites and devices", "devices-section", devices),
    section("Events your devices took part in", "events-section", events));
  let tokenMap = new Map<string, Token>();
  let latest: Rewards | null = null;

  const loadDevices = async () => {
    try {
      const items = await all<Device>(`/v1/owners/${address}/devices?limit=200`);
      replace(devices, profileBar(w, () => void loadDevices()), renderDevices(items, w, () => void loadDevices()));
    } catch (error) {
      replace(devices, errorBox((error as Error).message, "devices-error"));
    }
  };
  const loadEvents = async () => {
    try {
      const items = await all<OwnerEvent>(`/v1/owners/${address}/events?limit=50`, 4);
      replace(events, items.length ? renderEvents(items, tokenMap) : h("p", { "data-testid": "events-empty" }, "None of your devices has taken part in an event yet."));
    } catch (error) {
      replace(events, errorBox((error as Error).message, "events-error"));
    }
  };
  const loadRewards = async (): Promise<Rewards | null> => {
    try {
      latest = await get<Rewards>(`/v1/rewards/${address}`);
      replace(rewards, renderRewards(latest, tokenMap, () => void claim()));
      return latest;
    } catch (error) {
      replace(rewards, errorBox((error as Error).message, "rewards-error"));
      return null;
    }
  };

  const claim = async () => {
    const current = wallet();
    if (!current || !latest) return;
    const items = latest.tokens.filter((t) => BigInt(t.claimable) > 0n);
    if (!items.length) { replace(claimStatus, h("p", {}, "Nothing to claim.")); return; }
    const distributor = current.info.contracts.RewardDistributor as Address | undefined;
    if (!distributor) { replace(claimStatus, errorBox("The API names no RewardDistributor contract.", "claim-error")); return; }
    const button = rewards.querySelector<HTMLButtonElement>("[data-testid=claim-button]");
    if (button) button.disabled = true;
    replace(claimStatus, h("p", {}, "Sending the claim: confirm it in your wallet…"));
    try {
      const reader = await publicClient();
      const { request } = await reader.simulateContract({
        account: current.wallet.account, address: distributor, abi: rewardDistributorAbi, functionName: "claimMany",
        args: [address, items.map((t) => t.token), items.map((t) => BigInt(t.cumulative)), items.map((t) => t.proof as Hex[])],
      });
      const hash = await current.wallet.writeContract(request);
      replace(claimStatus, h("p", {}, "Claim sent: ", h("code", { "data-testid": "claim-tx" }, hash), ". Waiting for it to be mined…"));
      const receipt = await reader.waitForTransactionReceipt({ hash });
      if (receipt.status !== "success") throw new Error(`The claim transaction ${hash} was reverted.`);
      replace(claimStatus, h("p", { "data-testid": "claim-done" }, `Claimed in block ${receipt.blockNumber}: `, h("code", { "data-testid": "claim-tx" }, hash),
        ". Waiting for the API to index it…"));
      for (let i = 0; i < 30; i++) {  // the API follows the chain a few blocks behind; show its view once it has the claim
        const fresh = await loadRewards();
        if (fresh && items.every((t) => fresh.tokens.some((f) => f.token === t.token && BigInt(f.claimed) >= BigInt(t.cumulative)))) {
          replace(claimStatus, h("p", { "data-testid": "claim-done" }, `Claimed in block ${receipt.blockNumber}: `, h("code", { "data-testid": "claim-tx" }, hash), "."));
          return;
        }
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    } catch (error) {
      replace(claimStatus, errorBox(describeError(error), "claim-error"));
      if (button) button.disabled = false;
    }
  };

  const unsubscribe = subscribe((kind, event) => {
    if (kind === "claim" && String(event?.args?.account ?? "").toLowerCase() === address.toLowerCase()) void loadRewards();
    if (kind === "report" || kind === "reorg") { void loadRewards(); void loadEvents(); }
  });
  void (async () => {
    try {
      tokenMap = await tokens();
    } catch (error) {
      replace(rewards, errorBox((error as Error).message, "tokens-error"));
    }
    await Promise.all([loadRewards(), loadDevices(), loadEvents()]);
  })();
  return unsubscribe;
}

/** "Sign in to edit names" (SIWE), or who is signed in. */
function profileBar(w: Wallet, reload: () => void): HTMLElement {
  const status = h("span", { "data-testid": "siwe-status" });
  if (sessionFor(w.address)) {
    status.textContent = "Signed in: you can edit your devices' names below (stored by the API, not on chain).";
    return h("p", { class: "row" }, status);
  }
  const button = h("button", { type: "button", "data-testid": "siwe-button" }, "Sign in to edit names");
  const bar = h("div", { class: "row" }, button, status);
  button.addEventListener("click", async () => {
    button.disabled = true;
    status.textContent = "Sign the message in your wallet…";
    try {
      await signIn(w);
      reload();
    } catch (error) {
      replace(status, errorBox(describeError(error), "siwe-error"));
      button.disabled = false;
    }
  });
  return bar;
}

/** A device's name: text, or, when signed in, a field that PUTs `/v1/devices/{address}/profile`. */
function nameCell(d: Device, w: Wallet, reload: () => void): HTMLElement {
  const shown = h("span", { "data-testid": `device-${d.address}-name` }, d.profile?.name ?? "–");
  const session = sessionFor(w.address);
  if (!session) return shown;
  const input = h("input", { value: d.profile?.name ?? "", maxlength: 64, "aria-label": "device name", "data-testid": `device-${d.address}-name-input` });
  const message = h("span", {});
  const form = h("form", { class: "row" }, input, h("button", { type: "submit", "data-testid": `device-${d.address}-name-save` }, "Save"), message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const name = input.value.trim();
      await send("PUT", `/v1/devices/${d.address}/profile`, { name: name || null, locationLabel: d.profile?.locationLabel ?? null }, session.token);
      reload();
    } catch (error) {
      replace(message, errorBox(describeError(error), `device-${d.address}-name-error`));
    }
  });
  return h("div", {}, shown, form);
}

/** The owner's devices, grouped by site meter (a device metered alone under "devices metered alone"). */
function renderDevices(items: Device[], w: Wallet, reload: () => void): HTMLElement {
  if (!items.length) return h("p", { "data-testid": "devices-empty" }, "This address owns no registered device.");
  const sites = items.filter((d) => d.kindName === "site_meter");
  const out = h("div", {});
  const deviceTable = (list: Device[]) => table(["device", "kind", "capacity", "availability", "name"], list.map((d) => [
    h("code", { title: d.address, "data-testid": `device-${d.address}-address` }, short(d.address)),
    h("span", { "data-testid": `device-${d.address}-kind` }, d.kindName.replace(/_/g, " ")),
    h("span", { "data-testid": `device-${d.address}-capacity` }, kw(d.capacityW)),
    h("span", { "data-testid": `device-${d.address}-active` }, d.active ? "active" : "inactive"),
    nameCell(d, w, reload),
  ]), { class: "stack" });
  for (const site of sites) {
    const at = items.filter((d) => d.site === site.address);
    out.appendChild(h("article", { class: "site", "data-testid": `site-${site.address}` },
      h("h3", {}, `Site ${short(site.address)}`, site.profile?.name ? ` (${site.profile.name})` : ""),
      h("p", {}, `Connection rating ${kw(site.capacityW)}, ${site.active ? "active" : "inactive"}, zone ${site.zone}. Capability test: `,
        h("span", { "data-testid": `site-${site.address}-capability` }, capabilityText(site))),
      at.length ? deviceTable(at) : h("p", {}, "No device registered at this site.")));
  }
  const alone = items.filter((d) => d.kindName !== "site_meter" && !sites.some((s) => s.address === d.site));
  if (alone.length) out.appendChild(h("article", { class: "site" }, h("h3", {}, "Devices metered alone"), deviceTable(alone)));
  return out;
}

/** A site meter's capability record in words; absent or null: "not tested yet". */
function capabilityText(site: Device): string {
  const c = site.capability;
  if (!c) return "not tested yet";
  const when = c.testedAt ? ` on ${utc(c.testedAt)}` : "";
  return `${c.passed ? "passed" : "failed"}: ${kw(c.testedW ?? 0)} tested${when}${c.requestId ? ` (request #${c.requestId})` : ""}`;
}

function renderEvents(items: OwnerEvent[], tokenMap: Map<string, Token>): HTMLElement {
  return table(["request", "window", "unit", "decision", "accepted", "delivered", "payout", "why"], items.map((e) => {
    const id = `event-${e.requestId}-${e.unit ?? e.device ?? e.site ?? ""}`;
    const token = tokenMap.get(e.paymentToken.toLowerCase());
    const why = e.reasons.length ? e.reasons.map(reason).join("; ")
      : e.eligible === false ? "not eligible" : e.settled === false || e.deliveredWh === null ? "not settled yet" : "paid on what it delivered";
    return [
      h("span", { "data-testid": `${id}-request` }, `#${e.requestId} (${e.requestStatus})`),
      windowText(e.start, e.end),
      h("span", { title: e.unit ?? "" }, `${(e.unitKindName ?? e.kindName ?? "device").replace(/_/g, " ")} ${short(e.unit ?? e.device)}`),
      h("span", { "data-testid": `${id}-decision` }, decision(e.decision)),
      h("span", { "data-testid": `${id}-accepted` }, e.acceptedW === null ? "–" : kw(e.acceptedW)),
      h("span", { "data-testid": `${id}-delivered` }, e.deliveredWh === null ? "not settled yet" : kwh(e.deliveredWh)),
      h("span", { "data-testid": `${id}-payout` }, e.payout === null ? "–" : tokenAmount(e.payout, token)),
      h("span", { "data-testid": `${id}-reasons` }, why),
    ];
  }), { "data-testid": "events-table", class: "stack" });
}

function renderRewards(r: Rewards, tokenMap: Map<string, Token>, onClaim: () => void): HTMLElement {
  if (!r.tokens.length) return h("p", { "data-testid": "rewards-empty" }, `No rewards yet${r.epoch ? ` (epoch ${r.epoch})` : ""}.`);
  const claimable = r.tokens.some((t) => BigInt(t.claimable) > 0n);
  return h("div", {},
    h("p", {}, `Epoch ${r.epoch}, rewards root ${short(r.root)}${r.verified ? ", verified against the chain" : ", not verified yet"}.`),
    table(["token", "earned in all", "claimed", "claimable"], r.tokens.map((t) => {
      const token = tokenMap.get(t.token.toLowerCase());
      return [
        h("span", { title: t.token }, token?.symbol ?? short(t.token)),
        h("span", { "data-testid": `rewards-cumulative-${t.token}` }, tokenAmount(t.cumulative, token)),
        h("span", { "data-testid": `rewards-claimed-${t.token}` }, tokenAmount(t.claimed, token)),
        h("span", { "data-testid": `rewards-claimable-${t.token}` }, tokenAmount(t.claimable, token)),
      ];
    }), { "data-testid": "rewards-table" }),
    h("button", { type: "button", class: "primary", "data-testid": "claim-button", disabled: !claimable, onclick: onClaim },
      claimable ? "Claim" : "Nothing to claim"));
}
