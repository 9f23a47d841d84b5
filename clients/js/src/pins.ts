/**
 * The pins of PROTOCOL §6 (1.1) as pure rules on the State: which account an email is bound to, and
 * every key version of each contact. `contacts.ts` asks the server and applies them; nothing here
 * does I/O. The same rules as the Rust SDK's pins.
 */
import type { ContactRecord, State } from "./state.js";

/** What a check may accept besides what is pinned: nothing new (`check`), or also what is pending and was shown (`trust`). */
export type PinMode = "check" | "trust";

/** Why an answer of the server cannot be used as it is. */
export type Refusal =
  | { kind: "contact_changed"; pinned: string | undefined }
  | { kind: "key_changed"; pinned: [number, string] | undefined }
  | { kind: "forged"; version: number; reason: "pinned_key_changed" | "not_in_key_list" };

/** A key version and its public key (base64url). */
export type VersionedKey = [number, string];

/** A fresh record. */
export function newRecord(): ContactRecord {
  return { keys: {}, complete: false };
}

/** The newest pinned version of a record. */
export function newest(r: ContactRecord): VersionedKey | undefined {
  let best: VersionedKey | undefined;
  for (const [v, k] of Object.entries(r.keys)) {
    if (best === undefined || Number(v) > best[0]) best = [Number(v), k];
  }
  return best;
}

/** The account `email` is pinned to. */
export function boundTo(s: State, email: string): string | undefined {
  return Object.entries(s.contacts).find(([, r]) => r.email === email)?.[0];
}

/** Checks a lookup of `email` that answered `offered` (see the Rust SDK's check_binding). */
export function checkBinding(
  s: State,
  email: string,
  offered: string,
  mode: PinMode,
): Refusal | undefined {
  const pinned = boundTo(s, email);
  if (pinned === offered) {
    delete s.pendingEmails[email];
    return undefined;
  }
  const other = s.contacts[offered]?.email;
  const boundElsewhere = other !== undefined && other !== email;
  if (pinned === undefined && !boundElsewhere) return undefined;
  if (mode === "trust" && s.pendingEmails[email] === offered) return undefined;
  s.pendingEmails[email] = offered;
  return { kind: "contact_changed", pinned };
}

/** Pins `email` to `id`; the account it was pinned to keeps its keys and shows as an unverified sender claiming it. */
export function bind(s: State, email: string, id: string): void {
  for (const [other, r] of Object.entries(s.contacts)) {
    if (other !== id && r.email === email) {
      r.email = undefined;
      r.claimedEmail = email;
    }
  }
  const r = (s.contacts[id] ??= newRecord());
  r.email = email;
  r.claimedEmail = undefined;
  delete s.pendingEmails[email];
}

/** The server says `id` has `email`: pinned when nobody has that email and the contact has none; else only noted as claimed. */
export function claim(s: State, id: string, email: string): void {
  const bound = boundTo(s, email);
  if (bound === id) return;
  const r = s.contacts[id];
  if (r === undefined) return;
  if (bound === undefined && r.email === undefined) bind(s, email, id);
  else r.claimedEmail = email;
}

/** Pins a key list (ascending): pinned versions must come back unchanged; an unlisted old one is forged; new ones pinned up to `acceptUpTo`. */
export function pinList(
  r: ContactRecord,
  list: VersionedKey[],
  acceptUpTo: number,
): Refusal | undefined {
  for (const [v, k] of Object.entries(r.keys)) {
    if (!list.some(([lv, lk]) => lv === Number(v) && lk === k)) {
      return { kind: "forged", version: Number(v), reason: "pinned_key_changed" };
    }
  }
  const top = newest(r)?.[0] ?? 0;
  const add: VersionedKey[] = [];
  for (const [v, k] of list) {
    if (r.keys[v] !== undefined) continue;
    if (v < top && r.complete) return { kind: "forged", version: v, reason: "not_in_key_list" };
    if (v < top || v <= acceptUpTo) add.push([v, k]);
  }
  for (const [v, k] of add) r.keys[v] = k;
  r.complete = true;
  if (r.pending && r.keys[r.pending.version] === r.pending.publicKey) r.pending = undefined;
  return undefined;
}

/** Checks the key offered as a contact's newest: pinned → the newest pinned; changed/older → forged; newer → pending, key_changed. */
export function checkKey(r: ContactRecord, offered: VersionedKey): VersionedKey | Refusal {
  const [v, k] = offered;
  const top = newest(r);
  const pinned = r.keys[v];
  if (pinned !== undefined) {
    if (pinned !== k) return { kind: "forged", version: v, reason: "pinned_key_changed" };
    if (top?.[0] === v) r.pending = undefined;
    return top ?? offered;
  }
  if (top !== undefined && v < top[0])
    return { kind: "forged", version: v, reason: "not_in_key_list" };
  r.pending = { version: v, publicKey: k };
  return { kind: "key_changed", pinned: top };
}

/** Whether trusting may accept `offered`: pinned already, or the pending key that was shown. */
export function mayTrust(r: ContactRecord, offered: VersionedKey): boolean {
  return (
    r.keys[offered[0]] === offered[1] ||
    (r.pending?.version === offered[0] && r.pending.publicKey === offered[1])
  );
}

/** The pinned key at `version`: undefined for a version newer than all pinned (ask and show a key change); an older unpinned one is forged. */
export function keyAt(r: ContactRecord, version: number): string | undefined | Refusal {
  const k = r.keys[version];
  if (k !== undefined) return k;
  const top = newest(r);
  if (top !== undefined && version < top[0])
    return { kind: "forged", version, reason: "not_in_key_list" };
  return undefined;
}

/** Whether a value is a Refusal. */
export function isRefusal(x: unknown): x is Refusal {
  return typeof x === "object" && x !== null && "kind" in x;
}
