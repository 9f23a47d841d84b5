/**
 * What every part of a client shares: the server's Http, the KeyStore, the account's State, the
 * access token (in memory only), refresh (coordinated across tabs with navigator.locks when there
 * is one), the lifecycle queue, and the events.
 */
import { SealpostError } from "./errors.js";
import type { Http, Request, TransportOptions } from "./http.js";
import type { KdfRunner } from "./kdf.js";
import { wipe } from "./protocol/sodium.js";
import { decodeState, encodeState, mergeStored, type State, wipeState } from "./state.js";
import type { KeyStore } from "./store.js";

/** The events of a client, and what each handler receives. */
export interface ClientEvents {
  /** A contact has a newer key than the one pinned (PROTOCOL §6); held until `trust`. */
  keyChanged: import("./errors.js").TrustDetails;
  /** Another account answers for a pinned email; held until `trust`. */
  contactChanged: import("./errors.js").TrustDetails;
  /** The session ended (logout here or in another tab, revocation, a dead refresh token). */
  signedOut: { userId: string };
  /** A new access token (after login, resume or a refresh). */
  tokenRefreshed: { expiresAt: number };
  /** A stream authenticated (`after` is where it resumed). */
  streamConnected: { after: number };
  /** A stream's connection ended; it reconnects unless the session is over. */
  streamDisconnected: { code: number | undefined; reason: string };
}

/** The minimal WebSocket a client needs: the browser's, or the `ws` package's in Node. */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: any) => void) | null;
  onmessage: ((event: { data: any }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: any) => void) | null;
}

/** A WebSocket constructor. */
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Timing options (all in ms); the defaults suit production, tests shorten them. */
export interface Timing {
  /** Wait before a stream reconnects after a failure, doubled up to `reconnectMaxMs`. */
  reconnectDelayMs: number;
  reconnectMaxMs: number;
  /** Refresh when this fraction of an access token's life has passed (streams need it fresh). */
  refreshAt: number;
}

type Handler<T> = (value: T) => void;

/** The shared state of one client. */
export class Core {
  state: State | null = null;
  access: { token: string; expiresAt: number; issuedAt: number } | null = null;
  readonly tokenListeners = new Set<(token: string) => void>();
  private readonly handlers = new Map<keyof ClientEvents, Set<Handler<any>>>();
  private queue: Promise<unknown> = Promise.resolve();
  private saving: Promise<void> = Promise.resolve();
  private refreshing: Promise<string> | undefined;
  private channel: BroadcastChannel | undefined;

  constructor(
    readonly http: Http,
    readonly store: KeyStore,
    readonly kdf: KdfRunner,
    readonly WebSocket: WebSocketConstructor | undefined,
    readonly transport: TransportOptions,
    readonly timing: Timing,
  ) {}

  get origin(): string {
    return this.http.origin;
  }

  /** Subscribes to an event; the answer unsubscribes. */
  on<K extends keyof ClientEvents>(event: K, fn: Handler<ClientEvents[K]>): () => void {
    let set = this.handlers.get(event);
    if (set === undefined) this.handlers.set(event, (set = new Set()));
    set.add(fn);
    return () => void set.delete(fn);
  }

  emit<K extends keyof ClientEvents>(event: K, value: ClientEvents[K]): void {
    for (const fn of this.handlers.get(event) ?? []) {
      try {
        fn(value);
      } catch {
        // A handler's failure is the application's; it must not break the SDK.
      }
    }
  }

  /** Runs lifecycle calls one at a time, in order. */
  serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** The signed-in account's state, or `signed_out`. */
  need(): State {
    if (this.state === null)
      throw new SealpostError("signed_out", "not signed in: log in, register or resume first");
    return this.state;
  }

  /** The account's lock: refreshes and writes of every tab take turns under it. */
  private lockName(userId: string): string {
    return `sealpost ${this.origin} ${userId}`;
  }

  /** Writes the state to the store, merged with what another tab stored meanwhile, under the account's lock. */
  save(): Promise<void> {
    const s = this.need();
    const run = () =>
      withLock(this.lockName(s.userId), async () => {
        await this.takeInStored(s);
        await this.write(s);
      });
    this.saving = this.saving.then(run, run);
    return this.saving;
  }

  /** Merges the stored record of `s`'s account into `s` (see mergeStored). */
  private async takeInStored(s: State): Promise<void> {
    const stored = await this.store.load(this.origin, s.userId);
    if (stored === undefined) return;
    const other = decodeState(stored);
    wipe(stored);
    mergeStored(s, other);
    wipeState(other);
  }

  private async write(s: State): Promise<void> {
    const bytes = encodeState(s);
    try {
      await this.store.save(this.origin, s.userId, bytes);
    } finally {
      wipe(bytes);
    }
  }

  /** Takes a freshly signed-in state and its first access token. */
  adopt(state: State, token: string, expiresIn: number): void {
    this.attach(state);
    this.setAccess(token, expiresIn);
  }

  /** Takes a state (from login or the store) without an access token yet. */
  attach(state: State): void {
    if (this.state !== null && this.state !== state) wipeState(this.state);
    this.state = state;
    this.access = null;
    this.channel?.close();
    this.channel = undefined;
    if (typeof BroadcastChannel === "function") {
      const channel = new BroadcastChannel(`sealpost ${this.origin} ${state.userId}`);
      (channel as unknown as { unref?: () => void }).unref?.();
      channel.onmessage = (event: MessageEvent) => {
        if (
          (event.data as { type?: string })?.type === "signedOut" &&
          this.state?.userId === state.userId
        )
          this.drop();
      };
      this.channel = channel;
    }
  }

  private setAccess(token: string, expiresIn: number): void {
    const now = Date.now();
    this.access = { token, issuedAt: now, expiresAt: now + expiresIn * 1000 };
    this.emit("tokenRefreshed", { expiresAt: this.access.expiresAt });
    for (const fn of this.tokenListeners) fn(token);
  }

  /** Forgets the account in memory (not in the store) and says so. */
  drop(): void {
    const s = this.state;
    if (s === null) return;
    wipeState(s);
    this.state = null;
    this.access = null;
    this.channel?.close();
    this.channel = undefined;
    this.emit("signedOut", { userId: s.userId });
  }

  /** Tells the other tabs of this account that it signed out. */
  broadcastSignedOut(): void {
    this.channel?.postMessage({ type: "signedOut" });
  }

  /** A valid access token, refreshed first when it is (nearly) expired. */
  async token(): Promise<string> {
    const a = this.access;
    if (a !== null && Date.now() < a.issuedAt + (a.expiresAt - a.issuedAt) * this.timing.refreshAt)
      return a.token;
    return this.refresh(a?.token);
  }

  /**
   * Rotates the refresh token for a new access token. Within this process one refresh runs at a
   * time; across tabs navigator.locks serialises them and each one reads the refresh token the
   * last one stored, so no two ever present the same token (§4.3 would revoke the session).
   */
  refresh(failed?: string): Promise<string> {
    this.refreshing ??= withLock(this.lockName(this.need().userId), async () => {
      const s = this.need();
      if (failed !== undefined && this.access !== null && this.access.token !== failed)
        return this.access.token;
      // Another tab may have refreshed since: the token it stored is the live one.
      await this.takeInStored(s);
      if (s.session === null)
        throw new SealpostError("signed_out", "this session has ended: log in again");
      let answer: { access_token: string; refresh_token: string; expires_in: number };
      try {
        answer = await this.http.call({
          method: "POST",
          path: "/v1/auth/refresh",
          body: { refresh_token: s.session.refreshToken },
        });
      } catch (e) {
        if (e instanceof SealpostError && e.status === 401) {
          this.drop();
          throw new SealpostError(
            "signed_out",
            "the session was revoked or has expired: log in again",
            { status: 401 },
          );
        }
        throw e;
      }
      s.session = { id: s.session.id, refreshToken: answer.refresh_token };
      await this.write(s);
      this.setAccess(answer.access_token, answer.expires_in);
      return answer.access_token;
    }).finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  /** An authenticated call: refreshes once and retries on a 401. */
  async authed<T>(request: Omit<Request, "token">): Promise<T> {
    const token = await this.token();
    try {
      return await this.http.call<T>({ ...request, token });
    } catch (e) {
      if (!(e instanceof SealpostError) || e.status !== 401) throw e;
      const fresh = await this.refresh(token);
      return this.http.call<T>({ ...request, token: fresh });
    }
  }

  close(): void {
    this.channel?.close();
    this.channel = undefined;
  }
}

const localLocks = new Map<string, Promise<unknown>>();

/** Runs `fn` holding the named lock: navigator.locks across tabs where there is one, else within this process. */
function withLock<T>(name: string, fn: () => Promise<T>): Promise<T> {
  const locks = (globalThis as { navigator?: { locks?: LockManager } }).navigator?.locks;
  if (locks !== undefined) return locks.request(name, fn) as Promise<T>;
  const before = localLocks.get(name) ?? Promise.resolve();
  const run = before.then(fn, fn);
  const tail = run.catch(() => undefined);
  localLocks.set(name, tail);
  void tail.then(() => {
    if (localLocks.get(name) === tail) localLocks.delete(name);
  });
  return run;
}
