/** Messages (PROTOCOL §3, §4.1): sealing and sending with a sender copy, listing both ways, opening with every check and the replay cache, deleting. */
import type { Contact, Contacts } from "./contacts.js";
import type { Core } from "./core.js";
import { SealpostError } from "./errors.js";
import { fromBase64, isUuid, toBase64 } from "./protocol/encoding.js";
import {
  checkReplay,
  MAX_PAYLOAD_BYTES,
  open,
  payloadBytes,
  sealBytes,
  textPayload,
} from "./protocol/envelope.js";
import { wipe } from "./protocol/sodium.js";
import { newestKey } from "./state.js";

/** A mailbox entry as the server sent it (§4). */
export interface WireEntry {
  id: string;
  seq: number;
  from: string;
  to: string;
  ciphertext: string;
  key_version: number;
  sender_key_version: number;
  created_at: string;
}

/** A mailbox entry's metadata (still unchecked). */
export interface Entry {
  id: string;
  seq: number;
  from: string;
  /** The sender's email as this client pinned it. */
  fromEmail: string | undefined;
  /** An email the server claims for the sender while this client pins it to another account: an unverified sender, never to be shown under that name. */
  fromClaimedEmail: string | undefined;
  to: string;
  keyVersion: number;
  senderKeyVersion: number;
  storedAt: Date;
}

/** A message opened and checked (§3.3). */
export interface Message extends Entry {
  payloadId: string;
  toEmail: string | undefined;
  /** The sender's clock. */
  sentAt: Date;
  text: string;
  /** A sender copy of what I sent (or a note to self). */
  outgoing: boolean;
}

/** One entry and what opening it gave. */
export type Received =
  { ok: true; entry: Entry; message: Message } | { ok: false; entry: Entry; error: SealpostError };

/** A message sent: the recipient's entry. */
export interface Sent {
  id: string;
  seq: number;
  createdAt: Date;
  payloadId: string;
  to: Contact;
}

/** Options of `send`. */
export interface SendOptions {
  /** Also seal to my own key so my other devices show it (§3.4); default true, never for a note to self. */
  senderCopy?: boolean;
  signal?: AbortSignal;
}

/** Which page of `list`: `after` (ascending) or `before` (newest first). */
export interface ListOptions {
  after?: number;
  before?: number;
  limit?: number;
  signal?: AbortSignal;
}

/** The messages part of a client. */
export class Messages {
  constructor(
    private readonly core: Core,
    private readonly contacts: Contacts,
  ) {}

  /** Sends `text` to `to` (email or user id), sealed to the key checked against the pins; a rotation shows as `key_changed`, never a silent re-seal. */
  async send(to: string, text: string, options: SendOptions = {}): Promise<Sent> {
    try {
      return await this.sendOnce(to, text, options);
    } catch (e) {
      // Another tab (sharing this store) may have rotated my keys: take its key in and try once more.
      if (!(e instanceof SealpostError && e.code === "own_keys_changed")) throw e;
      const before = newestKey(this.core.need()).version;
      await this.core.save();
      if (newestKey(this.core.need()).version === before) throw e;
      return this.sendOnce(to, text, options);
    }
  }

  private async sendOnce(to: string, text: string, options: SendOptions): Promise<Sent> {
    const contact = await this.contacts.lookup(to);
    const s = this.core.need();
    const me = newestKey(s);
    const payload = textPayload(s.userId, contact.userId, text);
    const bytes = payloadBytes(payload);
    if (bytes.length > MAX_PAYLOAD_BYTES) {
      wipe(bytes);
      throw new SealpostError(
        "too_long",
        `a message holds at most ${MAX_PAYLOAD_BYTES} bytes of JSON payload`,
      );
    }
    const toSelf = contact.userId === s.userId;
    const body: Record<string, unknown> = {
      to: contact.userId,
      ciphertext: toBase64(sealBytes(bytes, contact.publicKey, me.secretKey)),
      key_version: contact.keyVersion,
      sender_key_version: me.version,
    };
    if ((options.senderCopy ?? true) && !toSelf) {
      body.sender_copy = {
        ciphertext: toBase64(sealBytes(bytes, me.publicKey, me.secretKey)),
        key_version: me.version,
      };
    }
    wipe(bytes);
    try {
      const r = await this.core.authed<{ id: string; seq: number; created_at: string }>({
        method: "POST",
        path: "/v1/messages",
        body,
        signal: options.signal,
      });
      return {
        id: r.id,
        seq: r.seq,
        createdAt: new Date(r.created_at),
        payloadId: payload.id,
        to: contact,
      };
    } catch (e) {
      if (!(e instanceof SealpostError)) throw e;
      if (e.code === "stale_key") {
        if (e.field !== "key_version")
          throw new SealpostError(
            "own_keys_changed",
            "this account has a newer key than this client: log in again",
            { status: 409, field: e.field },
          );
        // The recipient rotated: show it as a key change (this throws key_changed).
        await this.contacts.lookup(contact.userId);
        throw e;
      }
      if (e.status === 404 && e.field === "to")
        throw new SealpostError("unknown_user", `unknown user: ${to}`, {
          status: 404,
          field: "to",
        });
      throw e;
    }
  }

  /** A page of my mailbox, each entry opened: ascending from `after` (default 0), or newest first below `before`. */
  async list(options: ListOptions = {}): Promise<{ messages: Received[]; next: number }> {
    if (options.after !== undefined && options.before !== undefined)
      throw new SealpostError("invalid_input", "give after or before, not both");
    const q = new URLSearchParams();
    if (options.before !== undefined) q.set("before", String(options.before));
    else q.set("after", String(options.after ?? 0));
    if (options.limit !== undefined) q.set("limit", String(options.limit));
    const page = await this.core.authed<{
      messages: WireEntry[];
      next_after?: number;
      next_before?: number;
    }>({
      method: "GET",
      path: `/v1/messages?${q}`,
      signal: options.signal,
    });
    const messages: Received[] = [];
    for (const e of page.messages) messages.push(await this.openEntry(e, false));
    // The replay cache, written once for the page.
    if (page.messages.length > 0) await this.core.save();
    const next = options.before !== undefined ? page.next_before : page.next_after;
    if (!Number.isSafeInteger(next))
      throw new SealpostError("protocol", "the server's page has no cursor");
    return { messages, next: next! };
  }

  /** Deletes an entry of my own mailbox. */
  async delete(id: string): Promise<void> {
    if (!isUuid(id)) throw new SealpostError("invalid_input", "a message id is a UUID");
    await this.core.authed({ method: "DELETE", path: `/v1/messages/${id}` });
  }

  /** Opens one entry with every check of §3.3, the replay cache included; a failed check is a `Received` with `ok: false`. */
  async openEntry(w: WireEntry, persist = true): Promise<Received> {
    if (
      !isUuid(w.id) ||
      !isUuid(w.from) ||
      !isUuid(w.to) ||
      !Number.isSafeInteger(w.seq) ||
      typeof w.ciphertext !== "string"
    ) {
      throw new SealpostError(
        "protocol",
        "the server sent a mailbox entry that is not the protocol's",
      );
    }
    const entry: Entry = {
      id: w.id,
      seq: w.seq,
      from: w.from,
      fromEmail: this.contacts.knownEmail(w.from),
      fromClaimedEmail: this.contacts.claimedEmail(w.from),
      to: w.to,
      keyVersion: w.key_version,
      senderKeyVersion: w.sender_key_version,
      storedAt: new Date(w.created_at),
    };
    try {
      const s = this.core.need();
      let mine = s.keys.find((k) => k.version === w.key_version);
      if (mine === undefined) {
        // Sealed to a version another tab sharing this store may have made: take it in.
        await this.core.save();
        mine = s.keys.find((k) => k.version === w.key_version);
      }
      if (mine === undefined)
        throw new SealpostError(
          "not_for_me",
          `sealed to key version ${w.key_version}, which this client does not hold`,
        );
      const senderKey = await this.contacts.senderKey(w.from, w.sender_key_version);
      const payload = open(fromBase64(w.ciphertext, "ciphertext"), {
        me: s.userId,
        publicKey: mine.publicKey,
        secretKey: mine.secretKey,
        senderPublicKey: senderKey,
        from: w.from,
        to: w.to,
      });
      const seen = s.seen;
      checkReplay(
        { get: (k) => seen[k], set: (k, v) => ((seen[k] = v), undefined as never) },
        payload.id,
        w.id,
      );
      if (persist) await this.core.save();
      const full: Entry = {
        ...entry,
        fromEmail: this.contacts.knownEmail(w.from),
        fromClaimedEmail: this.contacts.claimedEmail(w.from),
      };
      return {
        ok: true,
        entry: full,
        message: {
          ...full,
          payloadId: payload.id,
          toEmail: this.contacts.knownEmail(payload.to),
          sentAt: new Date(payload.ts),
          text: payload.body ?? "",
          outgoing: w.from === s.userId,
        },
      };
    } catch (e) {
      // What the entry itself fails is its result; the client's own troubles (network, session, store, limits) end the call.
      const own = [
        "signed_out",
        "unreachable",
        "timeout",
        "store_failed",
        "aborted",
        "rate_limited",
        "overloaded",
        "internal",
      ];
      if (e instanceof SealpostError && !own.includes(e.code)) {
        return { ok: false, entry, error: e };
      }
      throw e;
    }
  }
}
