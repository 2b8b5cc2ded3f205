// #/buyer: open a flexibility request (ERC-20 approve, then FlexMarket.openRequest or
// openRequestWithAvailability), checked first against the chain's clock and the market's rules as
// `negawatt buyer open` checks it; then follow the request filling and, once settled, its payout
// and refund. Amounts typed in token units are converted exactly with viem's parseUnits.

import { parseEventLogs, parseUnits, type Address } from "viem";
import { erc20Abi, flexMarketAbi } from "../abi";
import { ApiError, all, get, network, tokens, type FlexRequest, type Token } from "../api";
import { errorBox, h, replace } from "../dom";
import { tokenAmount, units, utc } from "../format";
import { subscribe, requestIdOf } from "../sse";
import { describeError, onWallet, publicClient, wallet } from "../wallet";
import { chainNow, fromInputUtc, section, toInputUtc } from "./common";
import { connectPanel } from "./connect";
import { REQUEST_HEADERS, requestRow } from "./requests";

const UINT32 = 2n ** 32n - 1n, UINT64 = 2n ** 64n - 1n, UINT128 = 2n ** 128n - 1n;
const NUMBER = /^(\d+(\.\d+)?|\.\d+)$/;

export interface Order {
  token: Token; zone: number; start: number; end: number; targetW: bigint; pricePerKWh: bigint;
  availability: bigint; budget: bigint;
}

/** A typed amount in `decimals` (e.g. "12.5" of a 6-decimal token = 12500000n), exactly; the error
 * names the field when it is not a plain decimal or has more decimals than the unit allows. */
export function parseAmount(text: string, decimals: number, what: string): bigint {
  const value = text.trim();
  if (!NUMBER.test(value)) throw new Error(`${what}: "${value}" is not a plain decimal number (e.g. 12.5).`);
  const fraction = value.split(".")[1] ?? "";
  if (fraction.length > decimals) throw new Error(`${what}: at most ${decimals} decimals.`);
  return parseUnits(value.startsWith(".") ? `0${value}` : value, decimals);
}

/** Render the buyer view into `root`; returns its cleanup. */
export function buyerView(root: HTMLElement): () => void {
  const panel = connectPanel();
  const form = h("form", { class: "order", "data-testid": "open-request-form", novalidate: true });
  const result = h("div", { "data-testid": "open-result", "aria-live": "polite" });
  const tracked = h("div", { "data-testid": "tracked-request" });
  const mine = h("div", { "data-testid": "buyer-requests" });
  replace(root, section("Your wallet", "buyer-wallet", panel.element),
    section("Open a request", "open-section", form, result, tracked), section("Your requests", "buyer-requests-section", mine));

  let tokenMap = new Map<string, Token>();
  let trackedId: number | null = null;

  const field = (label: string, input: HTMLElement, hint?: string | Node) =>
    h("label", { class: "field" }, h("span", {}, label), input, hint ? h("small", {}, hint) : null);
  const tokenSelect = h("select", { name: "token", "data-testid": "order-token" });
  const zone = h("input", { name: "zone", type: "number", min: 0, step: 1, value: 1, "data-testid": "order-zone" });
  const start = h("input", { name: "start", type: "datetime-local", "data-testid": "order-start" });
  const minutes = h("input", { name: "minutes", type: "number", min: 1, step: 1, value: 60, "data-testid": "order-minutes" });
  const target = h("input", { name: "target", inputmode: "decimal", value: "", placeholder: "5", "data-testid": "order-target-kw" });
  const price = h("input", { name: "price", inputmode: "decimal", placeholder: "0.30", "data-testid": "order-price" });
  const availability = h("input", { name: "availability", inputmode: "decimal", placeholder: "optional", "data-testid": "order-availability" });
  const budget = h("input", { name: "budget", inputmode: "decimal", placeholder: "2", "data-testid": "order-budget" });
  const submit = h("button", { type: "submit", class: "primary", "data-testid": "open-request-button" }, "Approve and open request");
  const clock = h("p", { class: "wide hint", "data-testid": "order-clock" });
  replace(form,
    clock, field("payment token", tokenSelect), field("zone", zone),
    field("window start (UTC)", start, "its gate (start minus the market's gate lead) must still be ahead of the chain's clock"),
    field("duration (minutes)", minutes), field("target (kW)", target, "up to 3 decimals: kept in whole W"),
    field("price ceiling per kWh", price, h("span", { class: "token-unit" }, "in the payment token's units")),
    field("availability price per kW per hour (optional)", availability, h("span", { class: "token-unit" }, "in the payment token's units")),
    field("budget (escrowed now)", budget, h("span", {}, "must cover target x hours x (ceiling + availability), in ", h("span", { class: "token-unit" }, "the payment token"))), submit);

  const setup = async () => {
    try {
      const [info, map, now] = await Promise.all([network(), tokens(), chainNow()]);
      tokenMap = map;
      replace(tokenSelect, ...info.paymentTokens.map((a) => {
        const t = map.get(a.toLowerCase());
        return h("option", { value: a }, t?.symbol ? `${t.symbol} (${a.slice(0, 8)}…)` : a);
      }));
      const showUnit = () => {
        const t = map.get(tokenSelect.value.toLowerCase());
        for (const span of form.querySelectorAll(".token-unit")) span.textContent = t?.symbol ? `in ${t.symbol}` : "in the token's units";
      };
      tokenSelect.addEventListener("change", showUnit);
      showUnit();
      const market = info.contracts.FlexMarket as Address | undefined;
      let lead = 0;
      if (market) {
        try {
          lead = Number(await (await publicClient()).readContract({ address: market, abi: flexMarketAbi, functionName: "gateLeadSeconds" }));
        } catch { /* shown when sending */ }
      }
      const earliest = Math.ceil((now.now + lead + 60) / 3600) * 3600;
      start.value = toInputUtc(earliest);
      clock.textContent = `The chain's clock: ${utc(now.now)}${now.fromChain ? "" : " (the browser's: the chain could not be read)"}; `
        + `gate lead ${Math.round(lead / 60)} min.`;
    } catch (error) {
      replace(result, errorBox((error as Error).message, "order-setup-error"));
    }
  };

  const readOrder = (): Order => {
    const token = tokenMap.get(tokenSelect.value.toLowerCase());
    if (!token || token.decimals === null) throw new Error("Choose a payment token the API knows the decimals of.");
    const z = zone.value.trim();
    if (!/^\d+$/.test(z) || BigInt(z) > UINT32) throw new Error("Zone: a whole number from 0 to 4294967295.");
    const s = fromInputUtc(start.value);
    if (s === null) throw new Error("Window start: give a date and time (UTC).");
    const m = minutes.value.trim();
    if (!/^\d+$/.test(m) || Number(m) <= 0) throw new Error("Duration: a whole number of minutes above 0.");
    const targetW = parseAmount(target.value, 3, "Target (kW)");
    const pricePerKWh = parseAmount(price.value, token.decimals, "Price ceiling");
    const avail = availability.value.trim() ? parseAmount(availability.value, token.decimals, "Availability price") : 0n;
    const b = parseAmount(budget.value, token.decimals, "Budget");
    if (targetW <= 0n) throw new Error("Target: above 0 kW.");
    if (targetW > UINT64) throw new Error("Target: too large.");
    if (pricePerKWh <= 0n) throw new Error("Price ceiling: above 0.");
    if (pricePerKWh > UINT128 || avail > UINT128 || b > UINT128) throw new Error("An amount is too large for the market.");
    if (b <= 0n) throw new Error("Budget: above 0.");
    return { token, zone: Number(z), start: s, end: s + Number(m) * 60, targetW, pricePerKWh, availability: avail, budget: b };
  };

  const open = async () => {
    replace(result);
    const current = wallet();
    if (!current) { replace(result, errorBox("Connect a wallet first.", "open-error")); return; }
    let order: Order;
    try {
      order = readOrder();
    } catch (error) {
      replace(result, errorBox((error as Error).message, "open-error"));
      return;
    }
    submit.disabled = true;
    const log = h("ol", { "data-testid": "open-log" });
    replace(result, log);
    const say = (...parts: (Node | string)[]) => log.appendChild(h("li", {}, ...parts));
    try {
      const market = current.info.contracts.FlexMarket as Address | undefined;
      if (!market) throw new Error("The API names no FlexMarket contract.");
      const reader = await publicClient();
      const tokenAddress = order.token.address as Address;
      const symbol = order.token.symbol ?? "";
      const decimals = order.token.decimals ?? 0;
      // The checks `negawatt buyer open` runs, against the chain, before anything is sent.
      const [block, lead, minD, maxD, paused, balance, allowance] = await Promise.all([
        reader.getBlock({ blockTag: "latest" }),
        reader.readContract({ address: market, abi: flexMarketAbi, functionName: "gateLeadSeconds" }),
        reader.readContract({ address: market, abi: flexMarketAbi, functionName: "minDuration" }),
        reader.readContract({ address: market, abi: flexMarketAbi, functionName: "maxDuration" }),
        reader.readContract({ address: market, abi: flexMarketAbi, functionName: "paused" }),
        reader.readContract({ address: tokenAddress, abi: erc20Abi, functionName: "balanceOf", args: [current.address] }),
        reader.readContract({ address: tokenAddress, abi: erc20Abi, functionName: "allowance", args: [current.address, market] }),
      ]);
      const now = Number(block.timestamp) + 1;
      if (paused) throw new Error("FlexMarket is paused: no request can be opened now.");
      if (order.start - Number(lead) <= now) {
        throw new Error(`The window starts too early: its gate (${utc(order.start - Number(lead))}, ${Math.round(Number(lead) / 60)} min before the start) `
          + `must be after the chain's time, ${utc(now)}. Start at ${utc(Math.ceil((now + Number(lead) + 1) / 60) * 60)} or later.`);
      }
      const duration = order.end - order.start;
      if (duration < Number(minD) || duration > Number(maxD)) {
        throw new Error(`The window lasts ${duration / 60} min; the market takes ${Number(minD) / 60} to ${Number(maxD) / 60} min.`);
      }
      const most = (order.targetW * BigInt(duration) * (order.pricePerKWh + order.availability)) / (3600n * 1000n);
      if (order.budget < most) {
        throw new Error(`The budget ${units(order.budget, decimals)} ${symbol} is below what the request can pay: `
          + `${units(most, decimals)} ${symbol} (target x hours x (ceiling + availability)).`);
      }
      if (balance < order.budget) {
        throw new Error(`The budget is ${units(order.budget, decimals)} ${symbol} but this account holds ${units(balance, decimals)} ${symbol}. Nothing was sent.`);
      }
      if (allowance < order.budget) {
        say("Approving FlexMarket to take the budget: confirm in your wallet…");
        const { request } = await reader.simulateContract({ account: current.wallet.account, address: tokenAddress, abi: erc20Abi,
          functionName: "approve", args: [market, order.budget] });
        const approveHash = await current.wallet.writeContract(request);
        say("approve sent: ", h("code", { "data-testid": "approve-tx" }, approveHash));
        const receipt = await reader.waitForTransactionReceipt({ hash: approveHash });
        if (receipt.status !== "success") throw new Error(`The approval ${approveHash} was reverted.`);
      } else {
        say("The existing allowance covers the budget: no approval needed.");
      }
      say("Opening the request: confirm in your wallet…");
      const common = { account: current.wallet.account, address: market, abi: flexMarketAbi } as const;
      const openHash = order.availability > 0n
        ? await current.wallet.writeContract((await reader.simulateContract({ ...common, functionName: "openRequestWithAvailability",
            args: [order.zone, order.start, order.end, order.targetW, order.pricePerKWh, order.availability, tokenAddress, order.budget] })).request)
        : await current.wallet.writeContract((await reader.simulateContract({ ...common, functionName: "openRequest",
            args: [order.zone, order.start, order.end, order.targetW, order.pricePerKWh, tokenAddress, order.budget] })).request);
      say("open sent: ", h("code", { "data-testid": "open-tx" }, openHash));
      const receipt = await reader.waitForTransactionReceipt({ hash: openHash });
      if (receipt.status !== "success") throw new Error(`The open transaction ${openHash} was reverted.`);
      const opened = parseEventLogs({ abi: flexMarketAbi, eventName: "RequestOpened", logs: receipt.logs });
      const id = opened.length ? Number(opened[0].args.requestId) : null;
      if (id === null) throw new Error("The open transaction was mined but emitted no RequestOpened event.");
      say(h("span", { "data-testid": "opened-request-id" }, `Request #${id} opened`), ` in block ${receipt.blockNumber}, `
        + `escrow ${tokenAmount(order.budget, order.token)}.`);
      trackedId = id;
      void track(id);
    } catch (error) {
      log.appendChild(h("li", {}, errorBox(describeError(error), "open-error")));
    } finally {
      submit.disabled = false;
    }
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); void open(); });

  const track = async (id: number) => {
    for (let i = 0; i < 60 && trackedId === id; i++) {
      try {
        const r = await get<FlexRequest>(`/v1/requests/${id}`);
        renderTracked(r);
        void loadMine();
        return;
      } catch (error) {
        if (!(error instanceof ApiError && error.status === 404)) { replace(tracked, errorBox((error as Error).message, "tracked-error")); return; }
        replace(tracked, h("p", {}, `Waiting for the API to index request #${id}…`));
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  };
  const renderTracked = (r: FlexRequest) => {
    const token = tokenMap.get(r.paymentToken.toLowerCase());
    const outcome = r.status === "settled"
      ? h("p", { "data-testid": "tracked-outcome" }, `Settled: paid ${tokenAmount(r.payout, token)} to the owners, refunded ${tokenAmount(r.refund, token)} to you.`)
      : h("p", { "data-testid": "tracked-outcome" }, `Status: ${r.status}. It fills as the sites commit; the oracles clear it at the gate (${utc(r.gateClosure)}) and settle it after the window.`);
    replace(tracked, h("h3", {}, `Request #${r.id}`), h("div", { class: "table-wrap" }, h("table", { class: "stack" },
      h("thead", {}, h("tr", {}, ...REQUEST_HEADERS.map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, requestRow(r, tokenMap)))), outcome);
  };
  const loadMine = async () => {
    const current = wallet();
    if (!current) { replace(mine, h("p", { class: "hint" }, "Connect a wallet to see the requests you opened.")); return; }
    try {
      const items = await all<FlexRequest>(`/v1/requests?buyer=${current.address}&limit=100`, 3);
      replace(mine, items.length ? h("div", { class: "table-wrap" }, h("table", { class: "stack", "data-testid": "buyer-requests-table" },
        h("thead", {}, h("tr", {}, ...REQUEST_HEADERS.map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, ...items.map((r) => requestRow(r, tokenMap))))) : h("p", {}, "You have opened no request yet."));
    } catch (error) {
      replace(mine, errorBox((error as Error).message, "buyer-requests-error"));
    }
  };

  const unsubscribe = subscribe((kind, event) => {
    const id = requestIdOf(event);
    if (kind === "request" && id !== null && id === trackedId) {
      get<FlexRequest>(`/v1/requests/${id}`).then(renderTracked, (error) => replace(tracked, errorBox((error as Error).message, "tracked-error")));
    }
    if (kind === "request" || kind === "reorg") void loadMine();
  });
  const stopWallet = onWallet(() => void loadMine());
  void setup();
  return () => { unsubscribe(); stopWallet(); panel.dispose(); };
}
