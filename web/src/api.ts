// The negawatt API, read from relative `/v1/...` URLs (the API serves this page, same origin).
// Every failure becomes an ApiError whose message is the problem's `detail` in words.

/** A token amount as the API serves it: a decimal string of base units. */
export type Amount = string;

export interface Problem { type?: string; title?: string; status?: number; detail?: string; code?: string }

/** An API failure: `message` is what the page shows (the problem's title and detail). */
export class ApiError extends Error {
  constructor(message: string, readonly status: number, readonly code: string | null) {
    super(message);
  }
}

export interface Token { address: string; symbol: string | null; name: string | null; decimals: number | null; roles: string[]; error: string | null }
export interface NetworkInfo {
  chainId: number; rpcUrl: string | null; devnet: boolean;
  contracts: Record<string, `0x${string}`>; paymentTokens: `0x${string}`[];
}
export interface TokenAmount { token: string; amount: Amount }
export interface NetworkStats {
  devices: number; activeDevices: number; activeCapacityW: number; owners: number; zones: number;
  requests: number; settledRequests: number; deliveredWh: number; paid: TokenAmount[];
  currentEpoch: number; indexedBlock: number; headBlock: number;
}
export interface ZoneStats {
  zone: number; devices: number; activeDevices: number; registeredCapacityW: number; activeCapacityW: number;
  requests: number; settledRequests: number; deliveredWh: number; paid: TokenAmount[];
}
export interface SupplyCurve {
  zone: number; start: number; end: number; sites: number; curve: { price: Amount; watts: number }[];
  holdoutBps?: number;
}
export interface Verification {
  estimatedWh: number | null; ci95Wh: [number, number] | null; rule: string | null; fallbackReason: string | null;
  dispatchedSites: number; heldOutSites: number; paidWh: number;
}
export interface FlexRequest {
  id: number; buyer: string; zone: number; start: number; end: number; targetW: number; pricePerKWh: Amount;
  paymentToken: string; maxBudget: Amount; status: string; payout: Amount | null; refund: Amount | null;
  acceptedW?: number | null; clearingPrice?: Amount | null; availabilityPricePerKWh?: Amount | null;
  deliveredWh: number | null; gateClosure: number | null; holdoutBps: number | null; openedTx?: string;
  verification: Verification | null;
}
export interface SeriesGroup { group: "treatment" | "control"; sites: number; baselineWh: number[]; actualWh: number[] }
export interface RequestSeries {
  requestId: number; start: number; end: number; intervalSeconds: number; groups: SeriesGroup[];
  estimatedWh: number | null; ci95Wh: [number, number] | null; rule: string | null; fallbackReason?: string | null;
}
export interface OracleReport { digest: string; epoch: number; status: string; submittedBlock: number; challengeDeadline: number; role: "submitter" | "signer" }
export interface Oracle { address: string; url: string; active: boolean; lastReport: OracleReport | null }
export interface Capability { testedW?: number; passed?: boolean; testedAt?: number; requestId?: number }
export interface Device {
  address: string; owner: string; kind: number; kindName: string; capacityW: number; zone: number; active: boolean;
  registered: boolean; site: string | null; profile: { name?: string | null; locationLabel?: string | null } | null;
  capability?: Capability | null;
}
export interface OwnerEvent {
  requestId: number; zone: number; start: number; end: number; requestStatus: string; paymentToken: string;
  unit?: string; unitKindName?: string | null; site?: string | null; device?: string; kindName?: string | null;
  group?: string | null; decision: string; acceptedW: number | null; devices?: { device: string; kindName: string | null; acceptedW: number }[];
  settled?: boolean; committedWh?: number | null; deliveredWh: number | null; payout: Amount | null; eligible?: boolean | null;
  reasons: string[];
}
export interface RewardToken { token: `0x${string}`; cumulative: Amount; claimed: Amount; claimable: Amount; proof: `0x${string}`[] }
export interface Rewards { account: string; epoch: number; root: string | null; verified: boolean; tokens: RewardToken[] }
export interface Page<T> { items: T[]; next: string | null }

/** GET a `/v1/...` path as JSON; a problem (or an unreachable API) throws an ApiError in words. */
export async function get<T>(path: string): Promise<T> {
  return request<T>(path, { headers: { Accept: "application/json" } });
}

/** Send a JSON body (POST/PUT) with an optional bearer token; errors as in `get`. */
export async function send<T>(method: string, path: string, body: unknown, bearer?: string): Promise<T> {
  const headers: Record<string, string> = { "Content-Type": "application/json", Accept: "application/json" };
  if (bearer) headers.Authorization = `Bearer ${bearer}`;
  return request<T>(path, { method, headers, body: JSON.stringify(body) });
}

async function request<T>(path: string, init: RequestInit): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    throw new ApiError(`The API could not be reached (${(error as Error).message}).`, 0, null);
  }
  if (response.ok) return (await response.json()) as T;
  let problem: Problem = {};
  try {
    problem = (await response.json()) as Problem;
  } catch {
    /* not JSON: described by the status below */
  }
  const what = problem.detail ?? response.statusText ?? "no detail";
  const title = problem.title ? `${problem.title}: ` : "";
  throw new ApiError(`${title}${what} (HTTP ${response.status} on ${path.split("?")[0]})`, response.status, problem.code ?? null);
}

let tokenCache: Promise<Map<string, Token>> | null = null;

/** The tokens by lower-case address (cached: their decimals and symbols never change); a failure clears the cache. */
export function tokens(): Promise<Map<string, Token>> {
  tokenCache ??= get<{ items: Token[] }>("/v1/tokens").then(
    (body) => new Map(body.items.map((t) => [t.address.toLowerCase(), t])),
    (error) => { tokenCache = null; throw error; });
  return tokenCache;
}

let networkCache: Promise<NetworkInfo> | null = null;

/** The chain id, RPC URL and contract addresses (cached; a failure clears the cache). */
export function network(): Promise<NetworkInfo> {
  networkCache ??= get<NetworkInfo>("/v1/network").catch((error) => { networkCache = null; throw error; });
  return networkCache;
}

/** Every page of a paginated list (newest first), up to `maxPages` pages. */
export async function all<T>(path: string, maxPages = 20): Promise<T[]> {
  const out: T[] = [];
  let cursor: string | null = null;
  for (let i = 0; i < maxPages; i++) {
    const sep = path.includes("?") ? "&" : "?";
    const page: Page<T> = await get<Page<T>>(cursor ? `${path}${sep}cursor=${encodeURIComponent(cursor)}` : path);
    out.push(...page.items);
    cursor = page.next;
    if (!cursor) break;
  }
  return out;
}
