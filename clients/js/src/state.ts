/** What a client keeps per account in its KeyStore, and its byte form (JSON, keys as base64url). */
import { fromBase64, fromUtf8, toBase64, utf8 } from "./protocol/encoding.js";
import { wipe } from "./protocol/sodium.js";

/** One key version of my own, unwrapped. */
export interface OwnKey {
  version: number;
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

/** A contact's pins (PROTOCOL §6). Public keys as base64url. */
export interface ContactRecord {
  /** The email pinned to this account. */
  email?: string | undefined;
  /** An email the server claims for it while that email is pinned to another account. */
  claimedEmail?: string | undefined;
  /** Every pinned version → public key. */
  keys: Record<string, string>;
  /** Whether the whole key list was pinned (at first contact). */
  complete: boolean;
  /** A newer key shown to the user and not yet trusted. */
  pending?: { version: number; publicKey: string } | undefined;
}

/** Everything a client holds for one account. */
export interface State {
  server: string;
  userId: string;
  email: string;
  accountKey: Uint8Array;
  keys: OwnKey[];
  session: { id: string; refreshToken: string } | null;
  contacts: Record<string, ContactRecord>;
  /** email → the account a lookup answered instead of the pinned one, shown and not yet trusted. */
  pendingEmails: Record<string, string>;
  /** The replay cache (§3.3): payload id → mailbox entry id it first arrived in. */
  seen: Record<string, string>;
}

/** The newest of my key versions. */
export function newestKey(state: State): OwnKey {
  const k = state.keys.reduce((a, b) => (b.version > a.version ? b : a));
  return k;
}

/** The record as bytes for a KeyStore; the caller wipes them after saving. */
export function encodeState(s: State): Uint8Array {
  return utf8(
    JSON.stringify({
      v: 1,
      server: s.server,
      userId: s.userId,
      email: s.email,
      accountKey: toBase64(s.accountKey),
      keys: s.keys.map((k) => ({
        version: k.version,
        publicKey: toBase64(k.publicKey),
        secretKey: toBase64(k.secretKey),
      })),
      session: s.session,
      contacts: s.contacts,
      pendingEmails: s.pendingEmails,
      seen: s.seen,
    }),
  );
}

/** The record a KeyStore gave back. */
export function decodeState(bytes: Uint8Array): State {
  const o = JSON.parse(fromUtf8(bytes)) as Record<string, any>;
  if (o.v !== 1) throw new Error("unknown keystore record version");
  return {
    server: o.server,
    userId: o.userId,
    email: o.email,
    accountKey: fromBase64(o.accountKey),
    keys: (o.keys as any[]).map((k) => ({
      version: k.version,
      publicKey: fromBase64(k.publicKey),
      secretKey: fromBase64(k.secretKey),
    })),
    session: o.session ?? null,
    contacts: o.contacts ?? {},
    pendingEmails: o.pendingEmails ?? {},
    seen: o.seen ?? {},
  };
}

/** Wipes the secrets a state holds in memory. */
export function wipeState(s: State): void {
  wipe(s.accountKey, ...s.keys.map((k) => k.secretKey));
}

/**
 * Takes in what another tab (or client) stored for the same account: its refresh token when it is
 * of the same session (only a refresh, under the account's lock, writes a new one), and the pins,
 * pending changes, replay entries and key versions this state does not have yet. What this state
 * holds wins, so nothing pinned here is forgotten and nothing pinned there is lost.
 */
export function mergeStored(s: State, other: State): void {
  if (other.session !== null && other.session.id === s.session?.id)
    s.session = { ...other.session };
  for (const [id, r] of Object.entries(other.contacts)) if (!(id in s.contacts)) s.contacts[id] = r;
  for (const [email, id] of Object.entries(other.pendingEmails))
    if (!(email in s.pendingEmails)) s.pendingEmails[email] = id;
  for (const [payload, entry] of Object.entries(other.seen))
    if (!(payload in s.seen)) s.seen[payload] = entry;
  for (const k of other.keys) {
    if (!s.keys.some((x) => x.version === k.version)) {
      s.keys.push({
        version: k.version,
        publicKey: k.publicKey.slice(),
        secretKey: k.secretKey.slice(),
      });
    }
  }
}
