/** §6: fingerprints and safety numbers. */
import { concat, uuidBytes, utf8 } from "./encoding.js";
import { lib } from "./sodium.js";

/** The 30-digit fingerprint of a user's public key (unkeyed BLAKE2b-240 of label || uuid || key). */
export function fingerprint(userId: string, publicKey: Uint8Array): string {
  const fp = lib().crypto_generichash(
    30,
    concat(utf8("sealpost/v1/fingerprint"), uuidBytes(userId), publicKey),
    null,
  );
  let out = "";
  for (let i = 0; i < 30; i += 5) {
    let n = 0;
    for (let j = i; j < i + 5; j++) n = n * 256 + fp[j]!;
    out += String(n % 100000).padStart(5, "0");
  }
  return out;
}

/** The 60-digit safety number of two users: their fingerprints, smaller first. */
export function safetyNumber(aId: string, aKey: Uint8Array, bId: string, bKey: Uint8Array): string {
  const a = fingerprint(aId, aKey);
  const b = fingerprint(bId, bKey);
  return a < b ? a + b : b + a;
}

/** A 60-digit safety number as 12 groups of 5, for reading aloud. */
export function formatSafetyNumber(number: string): string {
  return number.match(/.{1,5}/g)?.join(" ") ?? "";
}
