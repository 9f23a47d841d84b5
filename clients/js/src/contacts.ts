/** Contacts and trust (PROTOCOL §6): lookups checked against the pins, trust, safety numbers, and the sender keys used for opening. */
import type { Core } from "./core.js";
import { SealpostError, type TrustDetails } from "./errors.js";
import { fromBase64Length, isUuid, toBase64 } from "./protocol/encoding.js";
import { safetyNumber } from "./protocol/fingerprint.js";
import { checkPublicKey } from "./protocol/keys.js";
import * as pins from "./pins.js";
import { newestKey, type State } from "./state.js";

/** A user and the key this client trusts for them. */
export interface Contact {
  userId: string;
  /** The email pinned to the account (undefined for one met only by id, or deleted). */
  email: string | undefined;
  /** The newest trusted key version and key. */
  keyVersion: number;
  publicKey: Uint8Array;
  /** The safety number of my newest key and this key (60 digits). */
  safetyNumber: string;
}

/** The safety numbers of a contact: with the pinned key, and with a key or account waiting for trust. */
export interface SafetyNumbers {
  userId: string;
  email: string | undefined;
  pinned: { version: number; safetyNumber: string } | undefined;
  pending: { version: number; safetyNumber: string } | undefined;
  /** Another account a lookup of the email answers now. */
  pendingUserId: string | undefined;
}

interface UserInfo {
  user_id: string;
  email?: string;
  public_key: string;
  key_version: number;
}

/** Trims an email and lowercases its ASCII letters (§1). */
export function normalizeEmail(email: string): string {
  return email.trim().replace(/[A-Z]/g, (c) => c.toLowerCase());
}

type Ref = { id: string } | { email: string };

function ref(contact: string): Ref {
  const t = contact.trim();
  return isUuid(t) ? { id: t } : { email: normalizeEmail(t) };
}

const key = (b64: string, what: string) => checkPublicKey(fromBase64Length(b64, 32, what));

/** The contacts part of a client. */
export class Contacts {
  constructor(private readonly core: Core) {}

  /** Looks a user up by email or id and checks the answer against the pins (§6); `key_changed`, `contact_changed`, `key_forged` otherwise. */
  lookup(contact: string): Promise<Contact> {
    return this.fetchAndPin(ref(contact), "check");
  }

  /** Accepts what the last warning about `contact` showed (a newer key, or the account now behind an email), if the server still offers it. */
  trust(contact: string): Promise<Contact> {
    return this.fetchAndPin(ref(contact), "trust");
  }

  /** The safety numbers of `contact`, after checking the server's current answer (a change shows as `pending`). */
  async safetyNumber(contact: string): Promise<SafetyNumbers> {
    const s = this.core.need();
    const me = newestKey(s);
    const number = (id: string, k: Uint8Array) => safetyNumber(s.userId, me.publicKey, id, k);
    let userId: string;
    let other: { id: string; version: number; key: Uint8Array } | undefined;
    try {
      userId = (await this.lookup(contact)).userId;
    } catch (e) {
      if (!(e instanceof SealpostError) || e.trust === undefined || e.code === "key_forged")
        throw e;
      const t = e.trust;
      if (e.code === "contact_changed" && t.pinnedUserId !== undefined) {
        userId = t.pinnedUserId;
        other = {
          id: t.userId,
          version: t.offeredVersion!,
          key: fromBase64Length(t.offeredKey!, 32, "key"),
        };
      } else userId = t.userId;
    }
    if (userId === s.userId) {
      return {
        userId,
        email: s.email,
        pinned: { version: me.version, safetyNumber: number(userId, me.publicKey) },
        pending: undefined,
        pendingUserId: undefined,
      };
    }
    const r = s.contacts[userId];
    if (r === undefined) throw new SealpostError("unknown_user", `unknown user: ${contact}`);
    const top = pins.newest(r);
    const pend = other
      ? { version: other.version, safetyNumber: number(other.id, other.key) }
      : r.pending
        ? {
            version: r.pending.version,
            safetyNumber: number(userId, fromBase64Length(r.pending.publicKey, 32, "key")),
          }
        : undefined;
    return {
      userId,
      email: r.email,
      pinned: top
        ? { version: top[0], safetyNumber: number(userId, fromBase64Length(top[1], 32, "key")) }
        : undefined,
      pending: pend,
      pendingUserId: other?.id,
    };
  }

  /** The trusted key of `userId` at `version`, for checking what it sent: the key list pinned at first contact, a newer version a key change, an unlisted older one forged. */
  async senderKey(userId: string, version: number): Promise<Uint8Array> {
    const s = this.core.need();
    if (userId === s.userId) {
      const own = s.keys.find((k) => k.version === version);
      if (own === undefined)
        throw new SealpostError(
          "own_keys_changed",
          `my key version ${version} is not known here: log in again to fetch it`,
        );
      return own.publicKey;
    }
    const r = await this.completeRecord(s, userId);
    const at = pins.keyAt(r, version);
    if (pins.isRefusal(at)) throw this.refused(s, userId, r.email, undefined, at);
    if (at !== undefined) return fromBase64Length(at, 32, "key");
    const info = await this.fetch<UserInfo>(
      `/v1/users/${userId}/keys/${version}`,
      `${userId} (key version ${version})`,
    );
    const offered: pins.VersionedKey = [version, toBase64(key(info.public_key, "public_key"))];
    const checked = pins.checkKey(r, offered);
    await this.core.save();
    if (pins.isRefusal(checked)) throw this.refused(s, userId, r.email, offered, checked);
    return fromBase64Length(checked[1], 32, "key");
  }

  /** The email pinned to `userId` (mine for me), without asking the server. */
  knownEmail(userId: string): string | undefined {
    const s = this.core.need();
    return userId === s.userId ? s.email : s.contacts[userId]?.email;
  }

  /** An email the server claims for `userId` while this client pins it to another account. */
  claimedEmail(userId: string): string | undefined {
    return this.core.need().contacts[userId]?.claimedEmail;
  }

  private async fetchAndPin(r: Ref, mode: pins.PinMode): Promise<Contact> {
    const s = this.core.need();
    const me = newestKey(s);
    if (("id" in r && r.id === s.userId) || ("email" in r && r.email === s.email)) {
      return {
        userId: s.userId,
        email: s.email,
        keyVersion: me.version,
        publicKey: me.publicKey,
        safetyNumber: safetyNumber(s.userId, me.publicKey, s.userId, me.publicKey),
      };
    }
    const info =
      "id" in r
        ? await this.fetch<UserInfo>(`/v1/users/${r.id}`, r.id)
        : await this.fetch<UserInfo>(`/v1/users?email=${encodeURIComponent(r.email)}`, r.email);
    const id = info.user_id;
    if (!isUuid(id) || ("id" in r && id !== r.id) || !Number.isSafeInteger(info.key_version)) {
      throw new SealpostError(
        "protocol",
        "the server answered a lookup with another user or a malformed one",
      );
    }
    const offered: pins.VersionedKey = [
      info.key_version,
      toBase64(key(info.public_key, "public_key")),
    ];
    const asked = "email" in r ? r.email : undefined;
    if (asked !== undefined) {
      const refusal = pins.checkBinding(s, asked, id, mode);
      if (refusal) {
        await this.core.save();
        throw this.refusedBinding(s, asked, id, offered, refusal);
      }
    }
    const existing = s.contacts[id];
    const email = existing?.email ?? asked;
    let list: pins.VersionedKey[] | undefined;
    if (existing?.complete && mode === "check") list = undefined;
    else if (existing?.complete && !pins.mayTrust(existing, offered)) {
      // Trust of a key that was never shown: show it first.
      const checked = pins.checkKey(existing, offered);
      await this.core.save();
      throw this.refused(
        s,
        id,
        email,
        offered,
        pins.isRefusal(checked) ? checked : { kind: "key_changed", pinned: pins.newest(existing) },
      );
    } else list = await this.keyList(id);
    const record = (s.contacts[id] ??= pins.newRecord());
    if (list !== undefined) {
      const top = pins.newest(record)?.[0] ?? 0;
      const acceptUpTo =
        Object.keys(record.keys).length === 0
          ? Infinity
          : mode === "trust"
            ? Math.max(offered[0], top)
            : top;
      const refusal = pins.pinList(record, list, acceptUpTo);
      if (refusal) {
        await this.core.save();
        throw this.refused(s, id, email, offered, refusal);
      }
    }
    const checked = pins.checkKey(record, offered);
    if (pins.isRefusal(checked)) {
      await this.core.save();
      throw this.refused(s, id, email, offered, checked);
    }
    if (asked !== undefined) pins.bind(s, asked, id);
    else if (typeof info.email === "string") pins.claim(s, id, info.email);
    await this.core.save();
    const pk = fromBase64Length(checked[1], 32, "key");
    return {
      userId: id,
      email: s.contacts[id]?.email,
      keyVersion: checked[0],
      publicKey: pk,
      safetyNumber: safetyNumber(s.userId, me.publicKey, id, pk),
    };
  }

  /** The record of `userId` with its whole key list pinned (fetched at first contact, with the email the server claims). */
  private async completeRecord(s: State, userId: string) {
    const existing = s.contacts[userId];
    if (existing?.complete) return existing;
    const list = await this.keyList(userId);
    let claimed: string | undefined;
    if (existing === undefined) {
      try {
        claimed = (await this.fetch<UserInfo>(`/v1/users/${userId}`, userId)).email;
      } catch (e) {
        if (!(e instanceof SealpostError && e.code === "unknown_user")) throw e;
      }
    }
    const record = (s.contacts[userId] ??= pins.newRecord());
    const refusal = pins.pinList(record, list, pins.newest(record)?.[0] ?? Infinity);
    if (refusal) {
      await this.core.save();
      throw this.refused(s, userId, claimed, undefined, refusal);
    }
    if (typeof claimed === "string") pins.claim(s, userId, claimed);
    await this.core.save();
    return record;
  }

  private async fetch<T>(path: string, what: string): Promise<T> {
    try {
      return await this.core.authed<T>({ method: "GET", path });
    } catch (e) {
      if (e instanceof SealpostError && e.status === 404)
        throw new SealpostError("unknown_user", `unknown user: ${what}`, { status: 404 });
      throw e;
    }
  }

  /** Every key version of `userId`, checked for shape: its own list, ascending, each key valid. */
  private async keyList(userId: string): Promise<pins.VersionedKey[]> {
    const l = await this.fetch<{
      user_id: string;
      keys: { key_version: number; public_key: string }[];
    }>(`/v1/users/${userId}/keys`, userId);
    const ok =
      l.user_id === userId &&
      Array.isArray(l.keys) &&
      l.keys.length > 0 &&
      l.keys.every(
        (k, i) =>
          Number.isSafeInteger(k.key_version) &&
          (i === 0 || k.key_version > l.keys[i - 1]!.key_version),
      );
    if (!ok)
      throw new SealpostError(
        "protocol",
        `the key list of ${userId} is not one user's versions in ascending order`,
      );
    return l.keys.map((k) => [k.key_version, toBase64(key(k.public_key, "public_key"))]);
  }

  private details(
    s: State,
    userId: string,
    email: string | undefined,
    refusal: pins.Refusal,
    offered?: pins.VersionedKey,
  ): TrustDetails {
    const me = newestKey(s);
    const d: TrustDetails = { userId, email };
    if (refusal.kind === "key_changed") d.pinnedVersion = refusal.pinned?.[0];
    if (refusal.kind === "forged") d.offeredVersion = refusal.version;
    if (offered !== undefined && refusal.kind !== "forged") {
      d.offeredVersion = offered[0];
      d.offeredKey = offered[1];
      d.safetyNumber = safetyNumber(
        s.userId,
        me.publicKey,
        userId,
        fromBase64Length(offered[1], 32, "key"),
      );
    }
    return d;
  }

  private refused(
    s: State,
    userId: string,
    email: string | undefined,
    offered: pins.VersionedKey | undefined,
    refusal: pins.Refusal,
  ): SealpostError {
    const who = email ?? userId;
    if (refusal.kind === "forged") {
      const why =
        refusal.reason === "pinned_key_changed"
          ? "a key version you pinned came back different"
          : "an older key version the key list never named";
      return new SealpostError(
        "key_forged",
        `forged key refused: the server offers key version ${refusal.version} of ${who}, ${why}; nothing was sealed to it or shown from it`,
        { trust: this.details(s, userId, email, refusal, offered) },
      );
    }
    if (refusal.kind === "contact_changed" || offered === undefined) {
      // Neither is answered where this is called (no offered key, no binding): refuse all the same.
      return new SealpostError("unknown_user", `the keys of ${who} cannot be checked`);
    }
    const trust = this.details(s, userId, email, refusal, offered);
    this.core.emit("keyChanged", trust);
    return new SealpostError(
      "key_changed",
      `the key of ${who} has changed: compare the safety number with them, then trust it`,
      { trust },
    );
  }

  private refusedBinding(
    s: State,
    email: string,
    offeredId: string,
    offered: pins.VersionedKey,
    refusal: pins.Refusal,
  ): SealpostError {
    if (refusal.kind !== "contact_changed")
      return this.refused(s, offeredId, email, offered, refusal);
    const trust = {
      ...this.details(s, offeredId, email, refusal, offered),
      pinnedUserId: refusal.pinned,
    };
    this.core.emit("contactChanged", trust);
    return new SealpostError(
      "contact_changed",
      `the account behind ${email} has changed: compare the safety number with them, then trust it`,
      { trust },
    );
  }
}
