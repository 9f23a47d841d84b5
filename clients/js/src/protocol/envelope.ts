/** §3: the payload, sealing (crypto_box inside crypto_box_seal, padded to 256), opening with every check of §3.3, sender copies (§3.4), the replay rule. */
import { SealpostError } from "../errors.js";
import { concat, fromUtf8, isUuid, randomUuid, utf8 } from "./encoding.js";
import { parseStrictJson } from "./json.js";
import { checkPublicKey, randomBytes } from "./keys.js";
import { lib, wipe } from "./sodium.js";

/** The plaintext of a message (§3.1). Fields a later version adds are kept in `extra`. */
export interface Payload {
  v: 1;
  id: string;
  from: string;
  to: string;
  /** The sender's clock, Unix milliseconds. */
  ts: number;
  type: string;
  /** The text, for `type: "text"`. */
  body?: string | undefined;
}

/** The longest payload JSON that fits the default 65,536-byte ciphertext (§3.1). */
export const MAX_PAYLOAD_BYTES = 65279;
/** How far in the future a `ts` may be (§3.3): 5 minutes. */
export const MAX_CLOCK_SKEW_MS = 300000;
const BLOCK = 256;

/** A fresh text payload from `from` to `to`. */
export function textPayload(from: string, to: string, body: string, ts = Date.now()): Payload {
  return {
    v: 1,
    id: randomUuid(randomBytes),
    from,
    to,
    ts,
    type: "text",
    body,
  };
}

/** The payload's JSON text as UTF-8. */
export function payloadBytes(payload: Payload): Uint8Array {
  const { v, id, from, to, ts, type, body } = payload;
  return utf8(
    JSON.stringify(
      body === undefined ? { v, id, from, to, ts, type } : { v, id, from, to, ts, type, body },
    ),
  );
}

/** sodium_pad to 256-byte blocks (ISO/IEC 7816-4): always at least one byte added. */
export function pad256(bytes: Uint8Array): Uint8Array {
  return lib().pad(bytes, BLOCK);
}

/** Seals payload bytes (§3.2): `crypto_box_seal(n || crypto_box_easy(pad(payload), n, to, my_sk), to)`. */
export function sealBytes(
  payload: Uint8Array,
  recipientPublicKey: Uint8Array,
  senderSecretKey: Uint8Array,
  nonce?: Uint8Array,
): Uint8Array {
  if (payload.length > MAX_PAYLOAD_BYTES) {
    throw new SealpostError(
      "too_long",
      `a message holds at most ${MAX_PAYLOAD_BYTES} bytes of payload`,
    );
  }
  checkPublicKey(recipientPublicKey);
  const s = lib();
  const padded = pad256(payload);
  const n = nonce ?? randomBytes(24);
  const inner = concat(n, s.crypto_box_easy(padded, n, recipientPublicKey, senderSecretKey));
  wipe(padded);
  const sealed = s.crypto_box_seal(inner, recipientPublicKey);
  wipe(inner);
  return sealed;
}

/** Seals a payload to the recipient (§3.2). */
export function seal(
  payload: Payload,
  recipientPublicKey: Uint8Array,
  senderSecretKey: Uint8Array,
): Uint8Array {
  const bytes = payloadBytes(payload);
  try {
    return sealBytes(bytes, recipientPublicKey, senderSecretKey);
  } finally {
    wipe(bytes);
  }
}

/** The sender copy (§3.4): the same payload sealed to my own key, inner box by my own key. */
export function sealSenderCopy(
  payload: Payload,
  myPublicKey: Uint8Array,
  mySecretKey: Uint8Array,
): Uint8Array {
  return seal(payload, myPublicKey, mySecretKey);
}

/** What opening needs besides the ciphertext: my key pair of the entry's `key_version`, the sender's pinned key, the entry's metadata. */
export interface OpenParams {
  /** My user id. */
  me: string;
  /** My key pair of the version the server names for the entry. */
  publicKey: Uint8Array;
  secretKey: Uint8Array;
  /** The pinned public key of the entry's `from` at its `sender_key_version`. */
  senderPublicKey: Uint8Array;
  /** The entry's `from` and `to`, as the server says. */
  from: string;
  to: string;
  /** Now, in Unix ms (for the future-ts rule). */
  now?: number;
}

/**
 * Opens a ciphertext with every check of §3.3 but the replay (see `checkReplay`): `not_for_me`,
 * `forged`, `malformed` or `unsupported_type`, never partial plaintext.
 */
export function open(ciphertext: Uint8Array, p: OpenParams): Payload {
  const s = lib();
  let inner: Uint8Array;
  try {
    inner = s.crypto_box_seal_open(ciphertext, p.publicKey, p.secretKey);
  } catch {
    throw new SealpostError("not_for_me", "this message was not sealed to my key");
  }
  let padded: Uint8Array;
  try {
    checkPublicKey(p.senderPublicKey);
    if (inner.length < 24 + 16) throw new Error("short");
    padded = s.crypto_box_open_easy(
      inner.subarray(24),
      inner.subarray(0, 24),
      p.senderPublicKey,
      p.secretKey,
    );
  } catch {
    throw new SealpostError(
      "forged",
      "this message was not made by the key of the account the server names",
    );
  } finally {
    wipe(inner);
  }
  const malformed = () =>
    new SealpostError("malformed", "this message is not a valid version-1 payload");
  let parsed: unknown;
  try {
    if (padded.length === 0 || padded.length % BLOCK !== 0) throw malformed();
    const bytes = s.unpad(padded, BLOCK);
    parsed = parseStrictJson(fromUtf8(bytes));
    wipe(bytes);
  } catch {
    throw malformed();
  } finally {
    wipe(padded);
  }
  const o = parsed as Record<string, unknown>;
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed) || o.v !== 1)
    throw malformed();
  if (!isUuid(o.id) || !isUuid(o.from) || !isUuid(o.to)) throw malformed();
  if (
    typeof o.ts !== "number" ||
    !Number.isSafeInteger(o.ts) ||
    o.ts < 0 ||
    typeof o.type !== "string"
  ) {
    throw malformed();
  }
  if (o.from !== p.from)
    throw new SealpostError("forged", "the message claims another sender than the entry");
  const expectedTo = p.from === p.me ? p.to : p.me;
  if (o.to !== expectedTo)
    throw new SealpostError("not_for_me", "the message is addressed to someone else");
  if (o.ts > (p.now ?? Date.now()) + MAX_CLOCK_SKEW_MS) {
    throw new SealpostError("malformed", "the message is dated more than 5 minutes in the future");
  }
  if (o.type !== "text") {
    throw new SealpostError("unsupported_type", "a message type this client does not know");
  }
  if (typeof o.body !== "string") throw malformed();
  return { v: 1, id: o.id, from: o.from, to: o.to, ts: o.ts, type: o.type, body: o.body };
}

/** The replay cache of §3.3: payload id → the entry id it first arrived in (a Map, or anything with its get and set). */
export type ReplayCache = Pick<Map<string, string>, "get" | "set">;

/** §3.3 step 5: the same payload id in a different entry is `replayed`; the same entry again is fine. Records first arrivals. */
export function checkReplay(cache: ReplayCache, payloadId: string, entryId: string): void {
  const first = cache.get(payloadId);
  if (first === undefined) {
    cache.set(payloadId, entryId);
    return;
  }
  if (first !== entryId) {
    throw new SealpostError(
      "replayed",
      "this message was already delivered in another mailbox entry",
    );
  }
}
