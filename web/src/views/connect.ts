// The wallet panel of the owner and buyer views: connect an injected wallet or, on a devnet, paste a
// test key (held in memory only); shows the connected address and lets the user disconnect.

import { network } from "../api";
import { errorBox, h, replace } from "../dom";
import { connectDevnetKey, connectInjected, describeError, disconnect, hasInjected, onWallet } from "../wallet";

/** A panel that connects the page's wallet; returns the element and its cleanup. */
export function connectPanel(): { element: HTMLElement; dispose: () => void } {
  const element = h("div", { class: "connect", "data-testid": "connect-panel" });
  const message = h("div", {});
  const render = async (connected: boolean, address?: string, kind?: string) => {
    if (connected) {
      replace(element, h("p", {}, "Connected: ", h("code", { "data-testid": "connected-address" }, address ?? ""),
        kind === "devnet-key" ? " (devnet test key, kept in this page's memory only)" : " (browser wallet)", " ",
        h("button", { type: "button", "data-testid": "disconnect-button", onclick: () => disconnect() }, "Disconnect")), message);
      return;
    }
    const parts: HTMLElement[] = [];
    if (hasInjected()) {
      parts.push(h("button", { type: "button", "data-testid": "connect-injected", onclick: () => void run(() => connectInjected()) },
        "Connect browser wallet"));
    }
    try {
      const info = await network();
      if (info.devnet) {
        const key = h("input", { type: "password", autocomplete: "off", spellcheck: "false", placeholder: "0x… devnet private key",
                                 "data-testid": "devnet-key-input", "aria-label": "devnet private key" });
        parts.push(h("form", { class: "row", "data-testid": "devnet-key-form", onsubmit: (e: Event) => {
          e.preventDefault();
          const value = key.value;
          key.value = "";
          void run(() => connectDevnetKey(value));
        } }, h("label", {}, "Devnet test key ", key), h("button", { type: "submit", "data-testid": "devnet-key-button" }, "Use devnet key")));
      }
      if (!parts.length) parts.push(h("p", {}, "Install a browser wallet (EIP-1193) to connect; this network is not a devnet, so test keys are not offered."));
    } catch (error) {
      parts.push(errorBox((error as Error).message, "network-error"));
    }
    replace(element, ...parts, message);
  };
  const run = async (action: () => Promise<unknown>) => {
    replace(message);
    try {
      await action();
    } catch (error) {
      replace(message, errorBox(describeError(error), "connect-error"));
    }
  };
  const dispose = onWallet((w) => void render(!!w, w?.address, w?.kind));
  return { element, dispose };
}
