/** The one error type of the SDK: `code` says what failed, never a secret or a primitive's inner cause. */

/** Every code a `SealpostError` can carry. Server codes (PROTOCOL §4) pass through as they are. */
export type ErrorCode =
  // §1–§3, the protocol entry
  | "invalid_encoding"
  | "invalid_input"
  | "kdf_refused"
  | "kdf_out_of_memory"
  | "wrong_password"
  | "recovery_key_typo"
  | "small_order_key"
  | "not_for_me"
  | "forged"
  | "replayed"
  | "malformed"
  | "unsupported_type"
  | "too_long"
  // §6, trust
  | "key_changed"
  | "contact_changed"
  | "key_forged"
  // the client
  | "signed_out"
  | "wrong_account"
  | "insecure_transport"
  | "timeout"
  | "unreachable"
  | "unknown_user"
  | "protocol"
  | "own_keys_changed"
  | "aborted"
  | "store_failed"
  // the server's (§4)
  | "invalid_request"
  | "unauthenticated"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "stale_key"
  | "payload_too_large"
  | "unsupported_media_type"
  | "rate_limited"
  | "overloaded"
  | "internal";

/** What a key or contact change (§6) shows the user: who, what was pinned, what is offered, and the number to compare. */
export interface TrustDetails {
  userId: string;
  email?: string | undefined;
  /** The newest pinned key version, if any. */
  pinnedVersion?: number | undefined;
  /** The account pinned to the email (contact change). */
  pinnedUserId?: string | undefined;
  /** The key version offered (key change) or the offered account's newest (contact change). */
  offeredVersion?: number | undefined;
  /** The offered public key, base64url. */
  offeredKey?: string | undefined;
  /** The 60-digit safety number of my key and the offered key. */
  safetyNumber?: string | undefined;
}

/** Options of a `SealpostError` besides its code and message. */
export interface SealpostErrorOptions {
  field?: string | undefined;
  status?: number | undefined;
  retryAfter?: number | undefined;
  trust?: TrustDetails | undefined;
  cause?: unknown;
}

/** The SDK's only error class: `code` for programs, `message` for people, `field`/`status`/`retryAfter` from the server. */
export class SealpostError extends Error {
  readonly code: ErrorCode;
  /** The JSON field at fault (server errors), as a dotted path. */
  readonly field: string | undefined;
  /** The HTTP status, for errors the server answered. */
  readonly status: number | undefined;
  /** Seconds to wait before trying again (429, 503). */
  readonly retryAfter: number | undefined;
  /** For `key_changed`, `contact_changed`, `key_forged`: what to show the user. */
  readonly trust: TrustDetails | undefined;

  constructor(code: ErrorCode, message: string, options: SealpostErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "SealpostError";
    this.code = code;
    this.field = options.field;
    this.status = options.status;
    this.retryAfter = options.retryAfter;
    this.trust = options.trust;
  }
}

/** Whether `e` is a `SealpostError` with `code` (any code when omitted). */
export function isSealpostError(e: unknown, code?: ErrorCode): e is SealpostError {
  return e instanceof SealpostError && (code === undefined || e.code === code);
}
