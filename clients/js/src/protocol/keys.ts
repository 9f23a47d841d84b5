/** §2: the password KDF and its bounds, key pairs (no small-order points), wrapping, the recovery key. */
import { SealpostError } from "../errors.js";
import { concat, equalBytes, fromBase64, fromHex, toBase64, toHex, utf8 } from "./encoding.js";
import { lib, wipe } from "./sodium.js";

/** The kdf object of PROTOCOL §2.1 as it travels in JSON. */
export interface Kdf {
  alg: "argon2id13";
  salt: string;
  opslimit: number;
  memlimit: number;
}

/** The bounds of §2.1: nothing weaker than INTERACTIVE, nothing above these ceilings. */
export const KDF_BOUNDS = { opsMin: 2, opsMax: 10, memMin: 67108864, memMax: 1073741824 } as const;

/** libsodium MODERATE, the protocol's default limits. */
export const KDF_DEFAULTS = { opslimit: 3, memlimit: 268435456 } as const;

/** Checks a kdf (e.g. prelogin's answer) against §2.1 before anything is derived: `kdf_refused` otherwise. */
export function checkKdf(kdf: unknown): Kdf {
  const refuse = (why: string): never => {
    throw new SealpostError("kdf_refused", `refusing the server's password parameters: ${why}`);
  };
  if (typeof kdf !== "object" || kdf === null) return refuse("not an object");
  const k = kdf as Record<string, unknown>;
  if (k.alg !== "argon2id13") refuse("the algorithm is not argon2id13");
  if (typeof k.salt !== "string") refuse("no salt");
  let salt: Uint8Array;
  try {
    salt = fromBase64(k.salt as string, "kdf.salt");
  } catch {
    return refuse("the salt is not base64url");
  }
  if (salt.length !== 16) refuse("the salt is not 16 bytes");
  const ops = k.opslimit;
  const mem = k.memlimit;
  if (
    !Number.isSafeInteger(ops) ||
    (ops as number) < KDF_BOUNDS.opsMin ||
    (ops as number) > KDF_BOUNDS.opsMax
  ) {
    refuse("opslimit outside 2..10");
  }
  if (
    !Number.isSafeInteger(mem) ||
    (mem as number) < KDF_BOUNDS.memMin ||
    (mem as number) > KDF_BOUNDS.memMax
  ) {
    refuse("memlimit outside 64 MiB..1 GiB");
  }
  return {
    alg: "argon2id13",
    salt: k.salt as string,
    opslimit: ops as number,
    memlimit: mem as number,
  };
}

/** A fresh kdf with a random 16-byte salt and the given limits. */
export function newKdf(limits: { opslimit: number; memlimit: number }): Kdf {
  return checkKdf({ alg: "argon2id13", salt: toBase64(randomBytes(16)), ...limits });
}

/** The two keys of §2.1. The caller wipes them when done. */
export interface PasswordKeys {
  /** master[0..32]: wraps the account key, never leaves the client. */
  wrapKey: Uint8Array;
  /** master[32..64]: sent to the server instead of the password. */
  authKey: Uint8Array;
}

/** The password as NFC UTF-8 (§2.1); the caller may wipe it. */
export function passwordBytes(password: string): Uint8Array {
  return utf8(password.normalize("NFC"));
}

/** Argon2id per §2.1, inline on this thread; `password` is NFC UTF-8 (see passwordBytes). Checks the kdf first. */
export function deriveKeysSync(password: Uint8Array, kdf: Kdf): PasswordKeys {
  const k = checkKdf(kdf);
  const salt = fromBase64(k.salt, "kdf.salt");
  let master: Uint8Array;
  try {
    master = lib().crypto_pwhash(
      64,
      password,
      salt,
      k.opslimit,
      k.memlimit,
      lib().crypto_pwhash_ALG_ARGON2ID13,
    );
  } catch (e) {
    throw new SealpostError(
      "kdf_out_of_memory",
      "not enough memory to derive keys from the password",
      { cause: e },
    );
  }
  const keys = { wrapKey: master.slice(0, 32), authKey: master.slice(32, 64) };
  wipe(master);
  return keys;
}

// The X25519 points of small order (§2), as libsodium lists them: 0, 1, the two points of order 8,
// p - 1, and the non-canonical p and p + 1. X25519 ignores the top bit, so a key matches with it
// cleared too: that covers every encoding.
const SMALL_ORDER = [
  "0000000000000000000000000000000000000000000000000000000000000000",
  "0100000000000000000000000000000000000000000000000000000000000000",
  "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
  "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
  "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
  "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
].map(fromHex);

/** A public key is usable unless it is of small order (§2), in any encoding: `small_order_key` otherwise. */
export function checkPublicKey(publicKey: Uint8Array): Uint8Array {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) {
    throw new SealpostError("small_order_key", "a public key is 32 bytes");
  }
  const k = publicKey.slice();
  k[31] = k[31]! & 0x7f;
  if (SMALL_ORDER.some((bad) => equalBytes(bad, k))) {
    throw new SealpostError("small_order_key", "refusing a public key of small order");
  }
  return publicKey;
}

/** Random bytes from the platform's CSPRNG in one call (libsodium's own source, without its four-bytes-a-call overhead in the ESM build). */
export function randomBytes(n: number): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(n));
}

/** An X25519 key pair for crypto_box. */
export interface KeyPair {
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

/** A fresh key pair (crypto_box_keypair). */
export function generateKeyPair(): KeyPair {
  const kp = lib().crypto_box_keypair();
  return { publicKey: kp.publicKey, secretKey: kp.privateKey };
}

/** The public key of a secret key. */
export function publicKeyOf(secretKey: Uint8Array): Uint8Array {
  return lib().crypto_scalarmult_base(secretKey);
}

/** `n || crypto_secretbox_easy(secret, n, key)` with a fresh nonce (or the given one): 72 bytes for 32 (§2.2). */
export function wrap(secret: Uint8Array, key: Uint8Array, nonce?: Uint8Array): Uint8Array {
  const n = nonce ?? randomBytes(24);
  return concat(n, lib().crypto_secretbox_easy(secret, n, key));
}

/** Opens a 72-byte wrap; `wrong_password` when the MAC fails (a wrong key), never garbage. */
export function unwrap(wrapped: Uint8Array, key: Uint8Array): Uint8Array {
  if (wrapped.length !== 72) throw new SealpostError("malformed", "a wrapped key is 72 bytes");
  try {
    return lib().crypto_secretbox_open_easy(wrapped.subarray(24), wrapped.subarray(0, 24), key);
  } catch {
    throw new SealpostError("wrong_password", "wrong password (the wrapped key does not open)");
  }
}

/** A random 32-byte key (the account key, a recovery key). */
export function randomKey(): Uint8Array {
  return randomBytes(32);
}

// §2.3, the recovery key.
const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/** Keyed BLAKE2b of an ASCII label under `key` (§2.3): the label is the message. */
export function labelled(label: string, key: Uint8Array, length = 32): Uint8Array {
  return lib().crypto_generichash(length, utf8(label), key);
}

function recoveryCheck(key: Uint8Array): Uint8Array {
  return labelled("sealpost/v1/recovery-check", key).slice(0, 3);
}

/** The recovery key as people write it down: 14 groups of 4 Crockford base32 symbols. */
export function recoveryKeyText(key: Uint8Array): string {
  if (key.length !== 32) throw new SealpostError("invalid_input", "a recovery key is 32 bytes");
  let n = BigInt("0x" + toHex(concat(key, recoveryCheck(key))));
  const symbols: string[] = [];
  for (let i = 0; i < 56; i++) {
    symbols.push(CROCKFORD[Number(n & 31n)]!);
    n >>= 5n;
  }
  const text = symbols.reverse().join("");
  return text.match(/.{4}/g)!.join("-");
}

/** Reads a recovery key back (§2.3): spaces, dashes and case ignored, O→0, I/L→1; anything off is `recovery_key_typo`. */
export function parseRecoveryKey(text: string): Uint8Array {
  const typo = () => new SealpostError("recovery_key_typo", "that recovery key has a typo");
  const t = text.replace(/[\s-]/g, "").toUpperCase().replace(/O/g, "0").replace(/[IL]/g, "1");
  if (t.length !== 56) throw typo();
  let n = 0n;
  for (const c of t) {
    const v = CROCKFORD.indexOf(c);
    if (v < 0) throw typo();
    n = (n << 5n) | BigInt(v);
  }
  const raw = fromHex(n.toString(16).padStart(70, "0"));
  const key = raw.slice(0, 32);
  if (!equalBytes(recoveryCheck(key), raw.subarray(32))) {
    wipe(key, raw);
    throw typo();
  }
  wipe(raw);
  return key;
}

/** The keys a recovery key gives (§2.3). */
export interface RecoveryKeys {
  wrapKey: Uint8Array;
  authKey: Uint8Array;
}

/** recovery_wrap_key and recovery_auth_key of §2.3. */
export function recoveryKeys(recoveryKey: Uint8Array): RecoveryKeys {
  return {
    wrapKey: labelled("sealpost/v1/recovery-wrap", recoveryKey),
    authKey: labelled("sealpost/v1/recovery-auth", recoveryKey),
  };
}

/** SHA-256, as the server stores auth keys (for tests and checks). */
export function sha256(bytes: Uint8Array): Uint8Array {
  return lib().crypto_hash_sha256(bytes);
}
