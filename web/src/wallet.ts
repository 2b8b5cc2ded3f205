// The wallet the page sends with: an injected EIP-1193 wallet (window.ethereum) or, on a devnet only,
// a pasted test key kept in this module's memory (never stored). One connection serves every view.

import {
  BaseError, ContractFunctionRevertedError, UserRejectedRequestError, createPublicClient, createWalletClient,
  custom, defineChain, http, type Account, type Chain, type EIP1193Provider, type Hex, type PublicClient,
  type Transport, type WalletClient,
} from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { network, type NetworkInfo } from "./api";

declare global {
  interface Window { ethereum?: EIP1193Provider }
}

export interface Wallet {
  address: `0x${string}`;
  kind: "injected" | "devnet-key";
  wallet: WalletClient<Transport, Chain, Account>;
  chain: Chain;
  info: NetworkInfo;
}

let current: Wallet | null = null;
const listeners = new Set<(w: Wallet | null) => void>();
let reader: PublicClient | null = null;

/** The connected wallet, or null. */
export function wallet(): Wallet | null {
  return current;
}

/** Call `listener` now and on every connect/disconnect; returns the unsubscribe function. */
export function onWallet(listener: (w: Wallet | null) => void): () => void {
  listeners.add(listener);
  listener(current);
  return () => listeners.delete(listener);
}

function set(next: Wallet | null): void {
  current = next;
  for (const listener of listeners) listener(next);
}

function chainOf(info: NetworkInfo): Chain {
  return defineChain({
    id: info.chainId, name: info.devnet ? "negawatt devnet" : `chain ${info.chainId}`,
    nativeCurrency: { name: "Ether", symbol: "ETH", decimals: 18 },
    rpcUrls: { default: { http: info.rpcUrl ? [info.rpcUrl] : [] } },
  });
}

/** A client that reads the chain: the API's advertised RPC, else the injected wallet's provider. */
export async function publicClient(): Promise<PublicClient> {
  if (reader) return reader;
  const info = await network();
  const transport = info.rpcUrl ? http(info.rpcUrl) : window.ethereum ? custom(window.ethereum) : null;
  if (!transport) throw new Error("No way to read the chain: the API names no RPC URL and there is no browser wallet.");
  reader = createPublicClient({ chain: chainOf(info), transport }) as PublicClient;
  return reader;
}

/** Whether an injected wallet (window.ethereum) is present. */
export function hasInjected(): boolean {
  return typeof window !== "undefined" && !!window.ethereum;
}

/** Connect the injected wallet: ask for its accounts and make sure it is on the API's chain. */
export async function connectInjected(): Promise<Wallet> {
  const provider = window.ethereum;
  if (!provider) throw new Error("No browser wallet found (window.ethereum is missing).");
  const info = await network();
  const chain = chainOf(info);
  const client = createWalletClient({ chain, transport: custom(provider) });
  const [address] = await client.requestAddresses();
  if (!address) throw new Error("The wallet gave no account.");
  const walletChain = await client.getChainId();
  if (walletChain !== info.chainId) {
    try {
      await client.switchChain({ id: info.chainId });
    } catch {
      try {  // a wallet that does not know the chain yet: offer it, then switch
        if (!info.rpcUrl) throw new Error("no RPC URL to add");
        await client.addChain({ chain });
        await client.switchChain({ id: info.chainId });
      } catch {
        throw new Error(`The wallet is on chain ${walletChain}; switch it to chain ${info.chainId} (this network's) and connect again.`);
      }
    }
  }
  const connected = createWalletClient({ account: address, chain, transport: custom(provider) });
  const result: Wallet = { address, kind: "injected", wallet: connected, chain, info };
  set(result);
  return result;
}

/** Use a devnet test key (0x + 64 hex): only when the API says this is a devnet and names an RPC URL.
 * The key lives in this closure only; reloading the page forgets it. */
export async function connectDevnetKey(key: string): Promise<Wallet> {
  const info = await network();
  if (!info.devnet) throw new Error("Test keys are only for a devnet; this network is not one.");
  if (!info.rpcUrl) throw new Error("The API names no RPC URL to send with a test key.");
  const trimmed = key.trim();
  if (!/^0x[0-9a-fA-F]{64}$/.test(trimmed)) throw new Error("A private key is 0x followed by 64 hexadecimal digits.");
  const account = privateKeyToAccount(trimmed as Hex);
  const chain = chainOf(info);
  const client = createWalletClient({ account, chain, transport: http(info.rpcUrl) });
  const result: Wallet = { address: account.address, kind: "devnet-key", wallet: client, chain, info };
  set(result);
  return result;
}

/** Forget the connection (and with it a devnet key). */
export function disconnect(): void {
  set(null);
}

/** A wallet, RPC or revert error in words: the contract's custom error with its arguments when the
 * chain refused, "rejected in the wallet" when the user declined, else viem's short message. */
export function describeError(error: unknown): string {
  if (error instanceof BaseError) {
    if (error.walk((e) => e instanceof UserRejectedRequestError)) return "You rejected the request in your wallet.";
    const revert = error.walk((e) => e instanceof ContractFunctionRevertedError);
    if (revert instanceof ContractFunctionRevertedError) {
      const name = revert.data?.errorName ?? revert.reason ?? "an unknown error";
      const args = revert.data?.args?.map((a) => String(a)).join(", ");
      return `The chain refused the transaction: ${name}${args ? `(${args})` : ""}.`;
    }
    return error.shortMessage || error.message;
  }
  return error instanceof Error ? error.message : String(error);
}
