/**
 * `@sealpost/sdk/protocol`: PROTOCOL.md 1.1 §1–§3 and §6 as pure functions, no I/O. Call
 * `await ready()` once (it loads libsodium), then everything here is synchronous.
 */
export { ready, wipe } from "./sodium.js";
export { SealpostError, isSealpostError, type ErrorCode } from "../errors.js";
export {
  toBase64,
  fromBase64,
  fromBase64Length,
  isUuid,
  uuidBytes,
  toHex,
  fromHex,
  utf8,
  concat,
  equalBytes,
} from "./encoding.js";
export {
  type Kdf,
  type KeyPair,
  type PasswordKeys,
  type RecoveryKeys,
  KDF_BOUNDS,
  KDF_DEFAULTS,
  checkKdf,
  newKdf,
  passwordBytes,
  deriveKeysSync,
  checkPublicKey,
  generateKeyPair,
  publicKeyOf,
  wrap,
  unwrap,
  randomKey,
  recoveryKeyText,
  parseRecoveryKey,
  recoveryKeys,
  sha256,
} from "./keys.js";
export {
  type Payload,
  type OpenParams,
  type ReplayCache,
  MAX_PAYLOAD_BYTES,
  MAX_CLOCK_SKEW_MS,
  textPayload,
  payloadBytes,
  pad256,
  sealBytes,
  seal,
  sealSenderCopy,
  open,
  checkReplay,
} from "./envelope.js";
export { fingerprint, safetyNumber, formatSafetyNumber } from "./fingerprint.js";
export { parseStrictJson, JsonNumber } from "./json.js";
