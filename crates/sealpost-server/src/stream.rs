//! `GET /v1/stream` (PROTOCOL §4.2): a WebSocket that delivers every entry of the caller's
//! mailbox after `after`, then each new one as it is stored on any node, in `seq` order, once.
//!
//! How it stays gap-free: the stream subscribes to its mailbox's wake-ups *before* reading the
//! backlog, and every read is "entries after the last `seq` I queued" from the store. A wake-up
//! carries nothing, so a lost one is repaired by the next (or by the resync after the
//! notification connection comes back), and a doubled one finds nothing new.
//!
//! How memory stays bounded: frames wait for the socket in a queue of `--stream-buffer` frames;
//! the store is read only as far as the queue has room. A client that leaves the queue full for
//! `--stream-stall-ms` is closed with 4409 and resumes with `after`.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{
    rejection::WebSocketUpgradeRejection, CloseFrame, Message, Utf8Bytes, WebSocket,
    WebSocketUpgrade,
};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use futures_util::{SinkExt as _, StreamExt as _};
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::time::{timeout, Instant};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::bearer::Auth;
use crate::clock::now_ms;
use crate::error::ApiError;
use crate::hub::{Control, NoSubscription, Subscription};
use crate::listen::ConnectionSlot;
use crate::state::AppState;
use crate::store::Cursor;
use crate::wire;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(stream))
}

/// Close codes: PROTOCOL §4.2's, and one for a peer that went quiet.
mod close {
    pub use sealpost_proto::close::*;
    /// The peer stopped answering pings (1011: the server ends the connection).
    pub const PEER_GONE: u16 = 1011;
    /// The account has as many streams open on this node as it may (1013: try again later).
    pub const TRY_AGAIN_LATER: u16 = 1013;
}

/// Entries read from the store at once.
const PAGE: usize = 200;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFrame {
    r#type: String,
    access_token: String,
    #[serde(default)]
    after: i64,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum ServerFrame {
    Ready { after: i64 },
}

/// The live stream of the caller's mailbox: a WebSocket; authenticate in the first frame,
/// `{"type":"auth","access_token":"…","after":<seq>}` (PROTOCOL §4.2).
#[utoipa::path(get, path = "/v1/stream", tag = "messages",
    responses((status = 101, description = "switching to the WebSocket protocol"), (status = 400)))]
async fn stream(
    State(state): State<AppState>,
    slot: Option<Extension<ConnectionSlot>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    match ws {
        Ok(ws) => ws
            // Frames up to READ_LIMIT are read whole (so that the close frame is not lost to a
            // reset while the client is still sending) and refused past CLIENT_FRAME_LIMIT with
            // 1009; anything larger fails the read.
            .max_message_size(READ_LIMIT)
            .max_frame_size(READ_LIMIT)
            // Clients send one auth frame and pongs: tungstenite's default 128 KiB read buffer,
            // allocated up front, was nearly all of an idle stream's memory.
            .read_buffer_size(4 * 1024)
            .on_upgrade(move |socket| async move {
                // The connection's place under --max-connections is kept while the stream lives.
                let _slot = slot;
                serve_stream(state, socket).await
            })
            .into_response(),
        Err(e) => {
            ApiError::invalid_body(format!("this endpoint is a WebSocket: {e}")).into_response()
        }
    }
}

/// What the writer task sends.
enum Out {
    Frame(String),
    Ping,
}

async fn serve_stream(state: AppState, socket: WebSocket) {
    let (mut sink, mut incoming) = socket.split();
    let auth_timeout = Duration::from_secs(state.config.stream_auth_timeout);
    let (auth, after) = match timeout(auth_timeout, incoming.next()).await {
        Err(_) => return close_now(&mut sink, close::AUTH_TIMEOUT, "no auth frame in time").await,
        Ok(None) => return,
        Ok(Some(Err(e))) => {
            if too_large(&e) {
                close_now(
                    &mut sink,
                    close::MESSAGE_TOO_BIG,
                    "frames from the client are at most 16 KiB",
                )
                .await;
            }
            return;
        }
        Ok(Some(Ok(frame))) => match first_frame(&frame) {
            Ok((token, after)) => match crate::bearer::authenticate(&state, &token).await {
                Ok(auth) => (auth, after),
                Err(_) => {
                    return close_now(
                        &mut sink,
                        close::UNAUTHENTICATED,
                        "invalid token or revoked session",
                    )
                    .await
                }
            },
            Err((code, reason)) => return close_now(&mut sink, code, reason).await,
        },
    };
    // Subscribe before reading anything, so that an entry stored from now on wakes us.
    let sub = match state.hub.subscribe(
        auth.user_id,
        auth.session_id,
        state.config.max_streams_per_account as usize,
    ) {
        Ok(sub) => sub,
        Err(NoSubscription::Stopping) => {
            return close_now(&mut sink, close::GOING_AWAY, "the server is shutting down").await
        }
        Err(NoSubscription::TooMany) => {
            return close_now(
                &mut sink,
                close::TRY_AGAIN_LATER,
                "too many streams for this account",
            )
            .await
        }
    };
    let ready = serde_json::to_string(&ServerFrame::Ready { after }).unwrap_or_default();
    if sink.send(Message::Text(ready.into())).await.is_err() {
        return;
    }
    state.metrics.streams_open.fetch_add(1, Ordering::Relaxed);
    let (queue, queued) = mpsc::channel::<Out>(state.config.stream_buffer.max(1));
    let (close_tx, close_rx) = oneshot::channel::<(u16, &'static str)>();
    let writer = tokio::spawn(write_frames(sink, queued, close_rx, state.clone()));
    let code = deliver(&state, auth, after, sub, &queue, &mut incoming).await;
    if let Some((code, reason)) = code {
        let _ = close_tx.send((code, reason));
    } else {
        drop(close_tx);
    }
    drop(queue);
    let _ = writer.await;
    state.metrics.streams_open.fetch_sub(1, Ordering::Relaxed);
}

/// The first frame's token and `after`, or the close code and reason when it is not a valid
/// `auth` frame (PROTOCOL §4.2). Pure, so that it is fuzzed as it is (`fuzz/`).
pub(crate) fn first_frame(frame: &Message) -> Result<(String, i64), (u16, &'static str)> {
    if oversized(frame) {
        return Err((
            close::MESSAGE_TOO_BIG,
            "frames from the client are at most 16 KiB",
        ));
    }
    let not_auth = (
        close::BAD_AUTH_FRAME,
        "the first frame must be an auth frame",
    );
    let Message::Text(text) = frame else {
        return Err(not_auth);
    };
    match serde_json::from_str::<AuthFrame>(text) {
        Ok(f) if f.r#type == "auth" && f.after >= 0 => Ok((f.access_token, f.after)),
        _ => Err(not_auth),
    }
}

/// The instant a token valid until `valid_until` (Unix seconds) stops being accepted.
fn deadline(valid_until: i64) -> Instant {
    Instant::now() + Duration::from_millis(millis_left(valid_until, now_ms()))
}

/// Milliseconds from `now_ms` until `valid_until` (Unix seconds), none if past; saturating, so
/// that a token valid until the end of time does not overflow.
pub(crate) fn millis_left(valid_until: i64, now_ms: i64) -> u64 {
    let left = valid_until.saturating_mul(1000).saturating_sub(now_ms);
    u64::try_from(left).unwrap_or(0)
}

/// A re-authentication frame on an open stream: the new token's deadline, or `None` when the
/// token is invalid or belongs to another session (PROTOCOL §4.2).
async fn reauthenticate(state: &AppState, current: &Auth, frame: &AuthFrame) -> Option<Instant> {
    if frame.r#type != "auth" {
        return None;
    }
    let fresh = crate::bearer::authenticate(state, &frame.access_token)
        .await
        .ok()?;
    (fresh.session_id == current.session_id && fresh.user_id == current.user_id)
        .then(|| deadline(fresh.valid_until))
}

/// Frames from clients are at most this long (PROTOCOL 1.1 §4.2).
const CLIENT_FRAME_LIMIT: usize = 16 * 1024;
/// Frames are read whole up to this, to be refused politely.
const READ_LIMIT: usize = 64 * 1024;

/// Whether a frame from the client is over the limit.
fn oversized(frame: &Message) -> bool {
    match frame {
        Message::Text(t) => t.len() > CLIENT_FRAME_LIMIT,
        Message::Binary(b) => b.len() > CLIENT_FRAME_LIMIT,
        _ => false,
    }
}

/// Whether a read failed because the client sent a frame over the limit.
fn too_large(error: &axum::Error) -> bool {
    std::error::Error::source(error)
        .and_then(|e| e.downcast_ref::<tungstenite::Error>())
        .is_some_and(|e| matches!(e, tungstenite::Error::Capacity(_)))
}

/// Sends a close frame on a stream that has not started.
async fn close_now(
    sink: &mut futures_util::stream::SplitSink<WebSocket, Message>,
    code: u16,
    reason: &'static str,
) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = timeout(
        Duration::from_secs(5),
        sink.send(Message::Close(Some(frame))),
    )
    .await;
}

/// Moves frames from the queue to the socket; on a close request, sends the close frame at once
/// (ahead of anything still queued) and stops.
async fn write_frames(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut queued: mpsc::Receiver<Out>,
    mut close_rx: oneshot::Receiver<(u16, &'static str)>,
    state: AppState,
) {
    loop {
        let next = tokio::select! {
            biased;
            close = &mut close_rx => {
                if let Ok((code, reason)) = close {
                    close_now(&mut sink, code, reason).await;
                }
                return;
            }
            next = queued.recv() => next,
        };
        let message = match next {
            Some(Out::Frame(text)) => Message::Text(text.into()),
            Some(Out::Ping) => Message::Ping(Default::default()),
            None => return,
        };
        let is_frame = matches!(message, Message::Text(_));
        tokio::select! {
            biased;
            close = &mut close_rx => {
                if let Ok((code, reason)) = close {
                    close_now(&mut sink, code, reason).await;
                }
                return;
            }
            sent = sink.send(message) => {
                if sent.is_err() {
                    return;
                }
                if is_frame {
                    state.metrics.messages_pushed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// The stream's main loop; returns the close code to send, if any.
async fn deliver(
    state: &AppState,
    auth: Auth,
    after: i64,
    mut sub: Subscription,
    queue: &mpsc::Sender<Out>,
    incoming: &mut futures_util::stream::SplitStream<WebSocket>,
) -> Option<(u16, &'static str)> {
    let ping_every = Duration::from_secs(state.config.stream_ping_interval.max(1));
    let stall = Duration::from_millis(state.config.stream_stall_ms);
    let mut ping = tokio::time::interval_at(Instant::now() + ping_every, ping_every);
    let mut last_heard = Instant::now();
    let mut sent = after;
    // Whether the store may hold entries after `sent` that did not fit in the queue.
    let mut more = true;
    let mut full_since: Option<Instant> = None;
    let mut expires = deadline(auth.valid_until);
    loop {
        if more {
            let room = queue.capacity().min(PAGE);
            if room > 0 {
                full_since = None;
                let entries = match state
                    .store
                    .entries(auth.user_id, Cursor::After(sent), room as i64)
                    .await
                {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!(error = %e, "stream cannot read the mailbox");
                        return Some((
                            close::GOING_AWAY,
                            "the server cannot read the mailbox; reconnect",
                        ));
                    }
                };
                more = entries.len() == room;
                for e in &entries {
                    if queue.try_send(Out::Frame(wire::message_frame(e))).is_err() {
                        return None;
                    }
                    sent = e.seq;
                }
                if more {
                    continue;
                }
            } else if full_since.is_none() {
                full_since = Some(Instant::now());
            }
        }
        let stalled_at = full_since.map(|t| t + stall);
        tokio::select! {
            changed = sub.wake.changed() => {
                if changed.is_err() {
                    return Some((close::GOING_AWAY, "the server is shutting down"));
                }
                more = true;
            }
            permit = queue.reserve(), if more && full_since.is_some() => {
                drop(permit);
            }
            _ = tokio::time::sleep_until(stalled_at.unwrap_or_else(Instant::now)), if stalled_at.is_some() => {
                state.metrics.slow_consumer_disconnects.fetch_add(1, Ordering::Relaxed);
                return Some((close::TOO_FAR_BEHIND, "too far behind: reconnect with after = the last seq received"));
            }
            event = sub.control.recv() => match event {
                Ok(Control::SessionRevoked(s)) if s == auth.session_id => {
                    return Some((close::UNAUTHENTICATED, "the session was revoked"));
                }
                Ok(Control::UserRevoked { user, except }) if user == auth.user_id && except != Some(auth.session_id) => {
                    return Some((close::UNAUTHENTICATED, "the session was revoked"));
                }
                Ok(Control::Shutdown) => return Some((close::GOING_AWAY, "the server is shutting down")),
                Ok(Control::Resync) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    // Revocations may have been missed: ask the store.
                    match crate::bearer::session_live(state, auth.session_id, auth.user_id).await {
                        Ok(true) => more = true,
                        Ok(false) => return Some((close::UNAUTHENTICATED, "the session was revoked")),
                        Err(_) => more = true,
                    }
                }
                Ok(_) => {}
                Err(broadcast::error::RecvError::Closed) => return Some((close::GOING_AWAY, "the server is shutting down")),
            },
            _ = tokio::time::sleep_until(expires) => {
                return Some((close::UNAUTHENTICATED, "the access token expired: refresh it and send a new auth frame"));
            }
            frame = incoming.next() => match frame {
                None | Some(Ok(Message::Close(_))) => return None,
                Some(Err(e)) => return too_large(&e).then_some((close::MESSAGE_TOO_BIG, "frames from the client are at most 16 KiB")),
                Some(Ok(frame)) if oversized(&frame) => {
                    return Some((close::MESSAGE_TOO_BIG, "frames from the client are at most 16 KiB"));
                }
                Some(Ok(Message::Text(text))) => {
                    last_heard = Instant::now();
                    // A fresh token for the same session keeps the stream alive (§4.2).
                    if let Ok(frame) = serde_json::from_str::<AuthFrame>(&text) {
                        match reauthenticate(state, &auth, &frame).await {
                            Some(until) => expires = until,
                            None => return Some((close::UNAUTHENTICATED, "the token is invalid, or of another session")),
                        }
                    }
                }
                // Pongs (and anything else the client says) show it is alive.
                Some(Ok(_)) => last_heard = Instant::now(),
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > ping_every * 2 + ping_every / 2 {
                    return Some((close::PEER_GONE, "no answer to two pings"));
                }
                // A full queue already shows the client is slow; the stall timer handles that.
                let _ = queue.try_send(Out::Ping);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_valid_until_the_end_of_time_does_not_overflow() {
        assert_eq!(millis_left(10, 9_000), 1_000);
        assert_eq!(millis_left(10, 11_000), 0);
        assert_eq!(millis_left(i64::MAX, 0), i64::MAX.unsigned_abs());
        assert_eq!(millis_left(i64::MIN, i64::MAX), 0);
        assert!(deadline(i64::MAX) > Instant::now());
    }

    #[test]
    fn only_a_text_auth_frame_within_the_limit_gets_through() {
        let text = |s: String| first_frame(&Message::Text(s.into()));
        let auth = r#"{"type":"auth","access_token":"t","after":7}"#;
        assert_eq!(text(auth.into()), Ok(("t".into(), 7)));
        let not_auth = Err((
            close::BAD_AUTH_FRAME,
            "the first frame must be an auth frame",
        ));
        assert_eq!(text(auth.replace('7', "-1")), not_auth);
        assert_eq!(text(auth.replace("auth\"", "hello\"")), not_auth);
        assert_eq!(first_frame(&Message::Binary(auth.into())), not_auth);
        let padded = auth.replace(r#""t""#, &format!("\"{}\"", "t".repeat(16 * 1024)));
        assert_eq!(text(padded).map_err(|e| e.0), Err(close::MESSAGE_TOO_BIG));
    }
}
