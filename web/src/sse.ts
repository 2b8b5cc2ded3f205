// The API's live event stream (`GET /v1/stream`), one EventSource for the whole page. Views subscribe
// to chain events and refetch what an event names; EventSource reconnects by itself with Last-Event-ID.

export interface ChainEvent {
  block: number; logIndex: number; txHash: string; contract: string; event: string;
  args: Record<string, unknown>;
}

type Listener = (kind: string, event: ChainEvent | null) => void;

const listeners = new Set<Listener>();
let source: EventSource | null = null;
let state: "connecting" | "open" | "error" = "connecting";
const stateListeners = new Set<(s: typeof state) => void>();

function ensure(): void {
  if (source || typeof EventSource === "undefined") return;
  source = new EventSource("/v1/stream?types=request,report,claim");
  source.onopen = () => setState("open");
  source.onerror = () => setState("error");
  for (const kind of ["request", "report", "claim", "reorg"]) {
    source.addEventListener(kind, (message) => {
      let parsed: ChainEvent | null = null;
      try {
        parsed = JSON.parse((message as MessageEvent<string>).data) as ChainEvent;
      } catch {
        parsed = null;
      }
      for (const listener of listeners) listener(kind, kind === "reorg" ? null : parsed);
    });
  }
}

function setState(next: typeof state): void {
  state = next;
  for (const listener of stateListeners) listener(next);
}

/** Call `listener(kind, event)` for every request/report/claim event (and `reorg`, with null); returns
 * the unsubscribe function. Opens the stream on first use. */
export function subscribe(listener: Listener): () => void {
  ensure();
  listeners.add(listener);
  return () => listeners.delete(listener);
}

/** Follow the stream's connection state ("open", "connecting", "error": the browser retries). */
export function onState(listener: (s: "connecting" | "open" | "error") => void): () => void {
  ensure();
  stateListeners.add(listener);
  listener(state);
  return () => stateListeners.delete(listener);
}

/** The request id an event names (`args.requestId`), if any. */
export function requestIdOf(event: ChainEvent | null): number | null {
  const value = event?.args?.requestId;
  if (typeof value === "number") return value;
  if (typeof value === "string" && /^\d+$/.test(value)) return Number(value);
  return null;
}
