// Sign-In with Ethereum for the owner's off-chain profile edits: an EIP-4361 message for this page's
// host (the API checks the domain against its own public URL) with a nonce from `/v1/auth/nonce`,
// signed by the connected wallet and exchanged for a bearer token. The token is kept in memory only.

import { createSiweMessage } from "viem/siwe";
import { get, send } from "./api";
import type { Wallet } from "./wallet";

export interface Session { token: string; address: string; expiresAt: number }

let current: Session | null = null;

/** The live session for `address` (case-insensitive), or null (none, another account, or expired). */
export function sessionFor(address: string): Session | null {
  if (!current || current.address.toLowerCase() !== address.toLowerCase()) return null;
  return current.expiresAt * 1000 > Date.now() ? current : null;
}

/** Sign in: nonce, the EIP-4361 message for `location.host`, the wallet's signature, then login. */
export async function signIn(w: Wallet): Promise<Session> {
  const { nonce } = await get<{ nonce: string; expiresAt: number }>("/v1/auth/nonce");
  const message = createSiweMessage({
    domain: location.host, address: w.address, chainId: w.info.chainId, nonce, uri: location.origin, version: "1",
    statement: "Sign in to edit the names of your negawatt devices.",
  });
  const signature = await w.wallet.signMessage({ account: w.wallet.account, message });
  current = await send<Session>("POST", "/v1/auth/login", { message, signature });
  return current;
}

/** Forget the session (a new connection signs in again). */
export function signOut(): void {
  current = null;
}
