//! WebSocket close codes of `GET /v1/stream` (PROTOCOL §4.2).

/// The server is shutting down.
pub const GOING_AWAY: u16 = 1001;
/// A frame from the client was larger than the server takes.
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// The first frame is not a valid `auth` frame.
pub const BAD_AUTH_FRAME: u16 = 4400;
/// The token is invalid or expired, or the session was revoked.
pub const UNAUTHENTICATED: u16 = 4401;
/// No `auth` frame arrived in time.
pub const AUTH_TIMEOUT: u16 = 4408;
/// The client fell too far behind: reconnect with `after` = the last `seq` received.
pub const TOO_FAR_BEHIND: u16 = 4409;
