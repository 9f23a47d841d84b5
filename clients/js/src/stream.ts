/**
 * The live stream (PROTOCOL §4.2) as an async iterable of opened entries: it authenticates in its
 * first frame, re-authenticates on the open socket after every refresh (refreshing before the
 * token expires), and resumes after a cut from the last `seq` it delivered. It ends when the
 * iteration stops, the signal aborts, or the session is over (`signed_out`).
 */
import type { Core, WebSocketLike } from "./core.js";
import { SealpostError } from "./errors.js";
import { streamUrl } from "./http.js";
import type { Messages, Received, WireEntry } from "./messages.js";

/** Options of `stream`. */
export interface StreamOptions {
  /** Deliver entries after this `seq` (default 0: the whole mailbox, then live). */
  after?: number;
  signal?: AbortSignal;
}

type Event =
  { kind: "frame"; data: unknown } | { kind: "close"; code: number | undefined; reason: string };

/** One connection's events as a queue. */
class Connection {
  private readonly events: Event[] = [];
  private wake: (() => void) | undefined;
  closed = false;

  constructor(readonly ws: WebSocketLike) {}

  push(e: Event): void {
    if (this.closed) return;
    if (e.kind === "close") this.closed = true;
    this.events.push(e);
    this.wake?.();
  }

  async next(): Promise<Event> {
    while (this.events.length === 0) await new Promise<void>((r) => (this.wake = r));
    this.wake = undefined;
    return this.events.shift()!;
  }
}

/** The stream of a client's mailbox (see the module comment). */
export function stream(
  core: Core,
  messages: Messages,
  options: StreamOptions = {},
): AsyncIterable<Received> {
  return {
    [Symbol.asyncIterator]: () => run(core, messages, options),
  };
}

async function* run(
  core: Core,
  messages: Messages,
  options: StreamOptions,
): AsyncGenerator<Received> {
  const Ws =
    core.WebSocket ?? (globalThis as { WebSocket?: new (url: string) => WebSocketLike }).WebSocket;
  if (Ws === undefined)
    throw new SealpostError(
      "invalid_input",
      "no WebSocket here: pass createClient({ WebSocket }) (in Node, the ws package's)",
    );
  const signal = options.signal;
  let after = options.after ?? 0;
  let failures = 0;
  let refreshedSinceReady = false;
  while (!signal?.aborted) {
    if (failures > 0) {
      const wait = Math.min(
        core.timing.reconnectDelayMs * 2 ** (failures - 1),
        core.timing.reconnectMaxMs,
      );
      await pause(wait, signal);
      if (signal?.aborted) break;
    }
    const token = await core.token();
    const conn = new Connection(new Ws(streamUrl(core.origin)));
    const ws = conn.ws;
    let current = token;
    const connectTimer = setTimeout(() => {
      core.emit("streamDisconnected", { code: undefined, reason: "connecting timed out" });
      conn.push({ kind: "close", code: undefined, reason: "connecting timed out" });
      ws.close();
    }, core.transport.connectTimeoutMs ?? 10000);
    const send = (frame: object) => {
      if (ws.readyState === 1) ws.send(JSON.stringify(frame));
    };
    ws.onopen = () => send({ type: "auth", access_token: token, after });
    ws.onmessage = (event) => {
      let data: unknown;
      try {
        data = JSON.parse(typeof event.data === "string" ? event.data : String(event.data));
      } catch {
        data = undefined;
      }
      // Events go out as they happen, even while the application is not reading the stream.
      if ((data as { type?: unknown } | undefined)?.type === "ready") {
        clearTimeout(connectTimer);
        core.emit("streamConnected", { after });
      }
      conn.push({ kind: "frame", data });
    };
    ws.onclose = (event) => {
      clearTimeout(connectTimer);
      if (!conn.closed)
        core.emit("streamDisconnected", { code: event.code, reason: event.reason ?? "" });
      conn.push({ kind: "close", code: event.code, reason: event.reason ?? "" });
    };
    ws.onerror = () => undefined;
    const onToken = (fresh: string) => {
      current = fresh;
      send({ type: "auth", access_token: fresh });
      schedule();
    };
    core.tokenListeners.add(onToken);
    // Refresh before the token expires: the server closes the stream when the newest token it was given does.
    let refreshTimer: ReturnType<typeof setTimeout> | undefined;
    const schedule = () => {
      clearTimeout(refreshTimer);
      const a = core.access;
      if (a === null) return;
      const at = a.issuedAt + (a.expiresAt - a.issuedAt) * core.timing.refreshAt;
      refreshTimer = setTimeout(
        () => void core.refresh(current).catch(() => undefined),
        Math.max(0, at - Date.now()),
      );
    };
    schedule();
    const onAbort = () => conn.push({ kind: "close", code: undefined, reason: "aborted" });
    signal?.addEventListener("abort", onAbort);
    if (signal?.aborted) onAbort(); // aborted while the token was being fetched
    try {
      for (;;) {
        const e = await conn.next();
        if (e.kind === "frame") {
          const f = e.data as { type?: string; message?: WireEntry; after?: number };
          if (f?.type === "ready") {
            failures = 0;
            refreshedSinceReady = false;
          } else if (f?.type === "message" && f.message !== undefined) {
            if (!(f.message.seq > after)) continue; // never twice, never backwards
            const received = await messages.openEntry(f.message);
            after = f.message.seq;
            yield received;
          }
          continue;
        }
        clearTimeout(connectTimer);
        if (signal?.aborted) return;
        if (e.code === 4401) {
          // Expired or revoked: one refresh, then reconnect; a failed refresh ends the stream (signed_out).
          if (refreshedSinceReady)
            throw new SealpostError("signed_out", "the stream was refused again after a refresh", {
              status: 401,
            });
          refreshedSinceReady = true;
          await core.refresh(current);
        } else if (e.code === 4400) {
          throw new SealpostError(
            "protocol",
            `the server refused the stream's auth frame: ${e.reason}`,
          );
        } else if (e.code !== 4409) {
          failures++;
        }
        break;
      }
    } finally {
      clearTimeout(connectTimer);
      clearTimeout(refreshTimer);
      core.tokenListeners.delete(onToken);
      signal?.removeEventListener("abort", onAbort);
      if (ws.readyState === 0 || ws.readyState === 1) ws.close(1000);
    }
  }
}

function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done);
  });
}
