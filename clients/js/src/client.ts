/** `createClient`: one Sealpost client for one server, put together from its parts. */
import { Accounts, type Account, type Session } from "./account.js";
import { Contacts, type Contact, type SafetyNumbers } from "./contacts.js";
import { Core, type ClientEvents, type Timing, type WebSocketConstructor } from "./core.js";
import { checkServer, http } from "./http.js";
import { defaultKdf, inlineKdf, type KdfRunner, workerKdf } from "./kdf.js";
import {
  Messages,
  type ListOptions,
  type Received,
  type SendOptions,
  type Sent,
} from "./messages.js";
import { ready } from "./protocol/sodium.js";
import type { KeyStore } from "./store.js";
import { stream, type StreamOptions } from "./stream.js";

/** Options of `createClient`. */
export interface ClientOptions {
  /** The server, e.g. `https://mail.example.com` (http:// only to loopback, or with `insecureHttp`). */
  server: string;
  /** Where keys, the refresh token, pins and the replay cache are kept: memoryStore(), indexedDBStore(), or fileStore() from @sealpost/sdk/node. */
  store: KeyStore;
  /** How Argon2id runs: "worker" (a module Worker per derivation, browsers), "inline" (Node), or your own runner; default: worker in browsers, inline elsewhere. */
  kdf?: "worker" | "inline" | KdfRunner;
  fetch?: typeof fetch;
  /** A WebSocket constructor, for Node 20, which has none (the `ws` package's). */
  WebSocket?: WebSocketConstructor;
  /** Allow plain http:// and ws:// to a server off loopback (anyone on the network can read the tokens). */
  insecureHttp?: boolean;
  /** Per-request timeout (default 30 000 ms) and stream connect timeout (default 10 000 ms). */
  requestTimeoutMs?: number;
  connectTimeoutMs?: number;
  /** Stream reconnection and token refresh timing (tests shorten these). */
  timing?: Partial<Timing>;
}

/** A Sealpost client (see the README for the tour). */
export interface Client {
  /** The server's origin. */
  readonly server: string;
  /** Who is signed in, or undefined. */
  account(): Account | undefined;
  register(
    email: string,
    password: string,
    options?: { recoveryKey?: boolean; deviceName?: string },
  ): Promise<{ userId: string; recoveryKey: string | undefined }>;
  login(email: string, password: string, options?: { deviceName?: string }): Promise<Account>;
  resume(userId?: string): Promise<Account>;
  logout(): Promise<void>;
  changePassword(current: string, next: string): Promise<void>;
  newRecoveryKey(password: string): Promise<string>;
  recover(
    email: string,
    recoveryKey: string,
    newPassword: string,
    options?: { deviceName?: string },
  ): Promise<Account>;
  rotateKeys(password: string): Promise<{ keyVersion: number }>;
  deleteAccount(password: string): Promise<void>;
  sessions(): Promise<Session[]>;
  revokeSession(id: string): Promise<void>;
  readonly contacts: {
    lookup(contact: string): Promise<Contact>;
    trust(contact: string): Promise<Contact>;
    safetyNumber(contact: string): Promise<SafetyNumbers>;
  };
  readonly messages: {
    send(to: string, text: string, options?: SendOptions): Promise<Sent>;
    list(options?: ListOptions): Promise<{ messages: Received[]; next: number }>;
    delete(id: string): Promise<void>;
    stream(options?: StreamOptions): AsyncIterable<Received>;
  };
  /** Subscribes to an event; the answer unsubscribes. */
  on<K extends keyof ClientEvents>(event: K, fn: (value: ClientEvents[K]) => void): () => void;
  /** Lets go of what the client holds open (its BroadcastChannel); it stays signed in in the store. */
  close(): void;
}

/** Makes a client for one server (checked against PROTOCOL §7 at once). */
export function createClient(options: ClientOptions): Client {
  const origin = checkServer(options.server, options.insecureHttp ?? false);
  const transport = {
    insecureHttp: options.insecureHttp ?? false,
    requestTimeoutMs: options.requestTimeoutMs ?? 30000,
    connectTimeoutMs: options.connectTimeoutMs ?? 10000,
    ...(options.fetch ? { fetch: options.fetch } : {}),
  };
  const kdf =
    options.kdf === "worker"
      ? workerKdf
      : options.kdf === "inline"
        ? inlineKdf
        : (options.kdf ?? defaultKdf());
  const timing: Timing = {
    reconnectDelayMs: 1000,
    reconnectMaxMs: 5000,
    refreshAt: 0.75,
    ...options.timing,
  };
  const core = new Core(
    http(origin, transport),
    options.store,
    kdf,
    options.WebSocket,
    transport,
    timing,
  );
  void ready();
  const accounts = new Accounts(core);
  const contacts = new Contacts(core);
  const messages = new Messages(core, contacts);
  return {
    server: origin,
    account: () => accounts.account(),
    register: (e, p, o) => accounts.register(e, p, o),
    login: (e, p, o) => accounts.login(e, p, o),
    resume: (id) => accounts.resume(id),
    logout: () => accounts.logout(),
    changePassword: (c, n) => accounts.changePassword(c, n),
    newRecoveryKey: (p) => accounts.newRecoveryKey(p),
    recover: (e, k, p, o) => accounts.recover(e, k, p, o),
    rotateKeys: (p) => accounts.rotateKeys(p),
    deleteAccount: (p) => accounts.deleteAccount(p),
    sessions: () => accounts.sessions(),
    revokeSession: (id) => accounts.revokeSession(id),
    contacts: {
      lookup: (c) => contacts.lookup(c),
      trust: (c) => contacts.trust(c),
      safetyNumber: (c) => contacts.safetyNumber(c),
    },
    messages: {
      send: (to, text, o) => messages.send(to, text, o),
      list: (o) => messages.list(o),
      delete: (id) => messages.delete(id),
      stream: (o) => stream(core, messages, o),
    },
    on: (event, fn) => core.on(event, fn),
    close: () => core.close(),
  };
}
