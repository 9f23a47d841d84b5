/** `@sealpost/sdk`: the Sealpost client for browsers and Node (PROTOCOL 1.1). Node-only pieces are in `@sealpost/sdk/node`, pure protocol functions in `@sealpost/sdk/protocol`. */
export { createClient, type Client, type ClientOptions } from "./client.js";
export { SealpostError, isSealpostError, type ErrorCode, type TrustDetails } from "./errors.js";
export { memoryStore, type KeyStore } from "./store.js";
export { indexedDBStore, type IndexedDBStoreOptions } from "./indexeddb-store.js";
export { inlineKdf, workerKdf, type KdfRunner } from "./kdf.js";
export type { Account, Session } from "./account.js";
export type { Contact, SafetyNumbers } from "./contacts.js";
export type { Entry, Message, Received, Sent, SendOptions, ListOptions } from "./messages.js";
export type { StreamOptions } from "./stream.js";
export type { ClientEvents, WebSocketLike, WebSocketConstructor, Timing } from "./core.js";
export { formatSafetyNumber } from "./protocol/fingerprint.js";
