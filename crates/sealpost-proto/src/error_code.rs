//! The `code` of PROTOCOL §4's error body, `{"error":{"code","message","field"}}`.

/// 400: the body, a field, or a query parameter is malformed.
pub const INVALID_REQUEST: &str = "invalid_request";
/// 401: no valid credential.
pub const UNAUTHENTICATED: &str = "unauthenticated";
/// 403: the credential is valid but does not allow this.
pub const FORBIDDEN: &str = "forbidden";
/// 404: absent, or not the caller's (the two are not told apart).
pub const NOT_FOUND: &str = "not_found";
/// 409: the resource exists already.
pub const CONFLICT: &str = "conflict";
/// 409: a key version is not the newest.
pub const STALE_KEY: &str = "stale_key";
/// 413: a body or a ciphertext is too large.
pub const PAYLOAD_TOO_LARGE: &str = "payload_too_large";
/// 415: the body is not `application/json`.
pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported_media_type";
/// 429: rate limited; `Retry-After` says when to try again.
pub const RATE_LIMITED: &str = "rate_limited";
/// 503: the server sheds load.
pub const OVERLOADED: &str = "overloaded";
/// 500: the server failed; the cause is in its log, never in the answer.
pub const INTERNAL: &str = "internal";
