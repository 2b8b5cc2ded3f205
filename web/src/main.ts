// The app's entry: a hash router over the three views (#/network, #/owner, #/buyer) and the
// header's wallet badge. Each view renders into #app and returns its cleanup.

import "./style.css";
import { h, replace } from "./dom";
import { short } from "./format";
import { buyerView } from "./views/buyer";
import { networkView } from "./views/network";
import { ownerView } from "./views/owner";
import { onWallet } from "./wallet";

type View = (root: HTMLElement) => () => void;
const ROUTES: Record<string, View> = { "#/network": networkView, "#/owner": ownerView, "#/buyer": buyerView };

const root = document.getElementById("app") as HTMLElement;
let cleanup: (() => void) | null = null;

/** Show the view the location's hash names (the network view by default). */
function route(): void {
  const hash = ROUTES[location.hash] ? location.hash : "#/network";
  cleanup?.();
  cleanup = null;
  for (const link of document.querySelectorAll<HTMLAnchorElement>("header nav a")) {
    link.classList.toggle("active", link.getAttribute("href") === hash);
    if (link.getAttribute("href") === hash) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  try {
    cleanup = ROUTES[hash](root);
  } catch (error) {
    replace(root, h("p", { class: "error", role: "alert" }, `This view failed: ${(error as Error).message}`));
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("unhandledrejection", (event) => {
  root.prepend(h("p", { class: "error", role: "alert", "data-testid": "unhandled-error" }, `Something failed: ${String(event.reason?.message ?? event.reason)}`));
});
onWallet((w) => {
  const badge = document.getElementById("wallet-status");
  if (badge) badge.textContent = w ? `${short(w.address)}${w.kind === "devnet-key" ? " (test key)" : ""}` : "not connected";
});
route();
