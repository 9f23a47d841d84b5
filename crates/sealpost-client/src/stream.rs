//! The live stream (PROTOCOL §4.2): a WebSocket to `/v1/stream` that yields opened, checked
//! messages in `seq` order and resumes by itself after a disconnect (or a 4409) from the last
//! `seq` it delivered.

use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::{SinkExt as _, StreamExt as _};
use sealpost_proto::close::{BAD_AUTH_FRAME, TOO_FAR_BEHIND, UNAUTHENTICATED};
use sealpost_proto::Secret;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

use crate::api;
use crate::{Client, Error, Received};

/// The longest wait between two reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// What [`Client::stream`] yields.
#[derive(Debug)]
pub enum StreamEvent {
    /// Authenticated; what follows is every entry after `after`.
    Connected { after: i64 },
    /// The next entry of the mailbox, in `seq` order, opened and checked (or why it cannot be
    /// shown: an entry that fails a check does not stop the stream).
    Message(Box<Received>),
    /// The connection ended (`code` is the WebSocket close code, when there was one); the
    /// stream reconnects by itself, from the last `seq` it delivered.
    Disconnected { code: Option<u16>, reason: String },
}

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A server frame.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Frame {
    Ready {
        #[allow(dead_code)]
        after: i64,
    },
    Message {
        message: api::Message,
    },
    /// A frame type a later version may add.
    #[serde(other)]
    Other,
}

/// The client's first frame (with `after`), and the one it sends on an open stream after each
/// refresh (without).
#[derive(Serialize)]
#[serde(tag = "type", rename = "auth")]
struct AuthFrame<'a> {
    access_token: &'a Secret,
    #[serde(skip_serializing_if = "Option::is_none")]
    after: Option<i64>,
}

impl Client {
    /// The mailbox from `after` on, live: the backlog, then each new entry as it is stored, each
    /// opened and checked like [`Client::fetch`] does. It reconnects by itself (after a
    /// disconnect, a server restart or a 4409) from the last `seq` it delivered, with a backoff
    /// of up to 5 s between failed attempts. After each refresh of this client's session it sends
    /// the new access token on the open stream (§4.2), so that the stream outlives its first
    /// token. On a 4401 it refreshes the token once; when that fails it ends with
    /// [`Error::SignedOut`]. It ends with an error, too, when the keys are locked or the keystore
    /// fails.
    pub fn stream(&self, after: i64) -> BoxStream<'static, Result<StreamEvent, Error>> {
        let run = Run {
            client: self.clone(),
            tokens: self.inner.tokens.subscribe(),
            after,
            ws: None,
            token: Secret::default(),
            failures: 0,
            refreshed: false,
            done: false,
        };
        futures_util::stream::unfold(run, |mut run| async move {
            let item = run.next().await?;
            Some((item, run))
        })
        .boxed()
    }
}

/// The stream's state between two items.
struct Run {
    client: Client,
    /// The access tokens of this client's refreshes.
    tokens: tokio::sync::watch::Receiver<Option<Secret>>,
    /// The last `seq` delivered.
    after: i64,
    ws: Option<Ws>,
    /// The access token the current connection authenticated with.
    token: Secret,
    /// Failed attempts in a row, for the backoff.
    failures: u32,
    /// Whether a 4401 was already answered with a refresh since the last `ready`.
    refreshed: bool,
    done: bool,
}

/// Why connecting did not work out.
enum Refused {
    /// 4401 for this token.
    Unauthorized(Secret),
    /// Try again later.
    Retry { code: Option<u16>, reason: String },
    /// Give up.
    Fatal(Error),
}

impl Run {
    async fn next(&mut self) -> Option<Result<StreamEvent, Error>> {
        loop {
            if self.done {
                return None;
            }
            let Some(ws) = self.ws.as_mut() else {
                if self.failures > 0 {
                    tokio::time::sleep(backoff(self.failures)).await;
                }
                match self.connect().await {
                    Ok(ws) => {
                        self.ws = Some(ws);
                        self.failures = 0;
                        self.refreshed = false;
                        return Some(Ok(StreamEvent::Connected { after: self.after }));
                    }
                    Err(Refused::Unauthorized(token)) => match self.unauthorized(&token).await {
                        Some(end) => return Some(end),
                        None => continue,
                    },
                    Err(Refused::Retry { code, reason }) => {
                        self.failures += 1;
                        return Some(Ok(StreamEvent::Disconnected { code, reason }));
                    }
                    Err(Refused::Fatal(error)) => return Some(self.fail(error)),
                }
            };
            let frame = tokio::select! {
                // A new token goes out before anything else is read.
                biased;
                Ok(()) = self.tokens.changed() => {
                    // After every refresh, even one that minted the same bytes (a JWT issued
                    // within the same second as the last one).
                    let token = self.tokens.borrow_and_update().clone();
                    if let Some(token) = token {
                        if let Err(reason) = reauth(ws, &token).await {
                            self.ws = None;
                            self.failures = 1;
                            return Some(Ok(StreamEvent::Disconnected { code: None, reason }));
                        }
                        self.token = token;
                    }
                    continue;
                }
                frame = ws.next() => frame,
            };
            match frame {
                Some(Ok(WsMessage::Text(text))) => match serde_json::from_str::<Frame>(&text) {
                    Ok(Frame::Message { message }) => {
                        // Never twice, never backwards, even if a server repeats itself.
                        if message.seq <= self.after {
                            continue;
                        }
                        let mut opened = match self.client.open_entries(vec![message]).await {
                            Ok(opened) => opened,
                            Err(error) => return Some(self.fail(error)),
                        };
                        let Some(received) = opened.pop() else {
                            continue;
                        };
                        self.after = received.entry.seq;
                        return Some(Ok(StreamEvent::Message(Box::new(received))));
                    }
                    Ok(Frame::Ready { .. } | Frame::Other) => continue,
                    Err(e) => {
                        return Some(self.fail(Error::Stream(format!(
                            "the server sent a frame that is not the protocol: {e}"
                        ))))
                    }
                },
                Some(Ok(WsMessage::Close(frame))) => {
                    self.ws = None;
                    let (code, reason) = close_code(frame);
                    match code {
                        Some(UNAUTHENTICATED) => {
                            let token = std::mem::take(&mut self.token);
                            if let Some(end) = self.unauthorized(&token).await {
                                return Some(end);
                            }
                        }
                        Some(BAD_AUTH_FRAME) => {
                            return Some(self.fail(Error::Stream(format!(
                                "the server refused the auth frame: {reason}"
                            ))))
                        }
                        // Too far behind: reconnect at once from the last seq delivered.
                        Some(TOO_FAR_BEHIND) => {}
                        // Anything else (a restart, 1001, 1011): after a short pause.
                        _ => self.failures = 1,
                    }
                    return Some(Ok(StreamEvent::Disconnected { code, reason }));
                }
                // Pings are answered by the WebSocket layer itself.
                Some(Ok(_)) => continue,
                Some(Err(e)) => {
                    self.ws = None;
                    self.failures = 1;
                    return Some(Ok(StreamEvent::Disconnected {
                        code: None,
                        reason: e.to_string(),
                    }));
                }
                None => {
                    self.ws = None;
                    self.failures = 1;
                    return Some(Ok(StreamEvent::Disconnected {
                        code: None,
                        reason: "the connection closed".to_owned(),
                    }));
                }
            }
        }
    }

    /// Ends the stream with `error`.
    fn fail(&mut self, error: Error) -> Result<StreamEvent, Error> {
        self.done = true;
        self.ws = None;
        Err(error)
    }

    /// A 4401: one refresh, then try again; a second 4401 before `ready`, or a failed refresh,
    /// ends the stream. `None` means: go on connecting.
    async fn unauthorized(&mut self, token: &Secret) -> Option<Result<StreamEvent, Error>> {
        if self.refreshed {
            return Some(self.fail(Error::SignedOut));
        }
        self.refreshed = true;
        match self.client.refresh(token).await {
            Ok(()) => None,
            Err(Error::Unreachable { .. }) => {
                self.refreshed = false;
                self.failures += 1;
                Some(Ok(StreamEvent::Disconnected {
                    code: Some(UNAUTHENTICATED),
                    reason: "cannot reach the server to refresh the session".to_owned(),
                }))
            }
            Err(error) => Some(self.fail(error)),
        }
    }

    /// Connects, authenticates with `after`, and waits for `ready`.
    async fn connect(&mut self) -> Result<Ws, Refused> {
        self.client.unlocked(|_| ()).map_err(Refused::Fatal)?;
        // Refreshes up to here are in the token read next; any later one is sent on the stream.
        self.tokens.borrow_and_update();
        let token = self.client.access_token().map_err(Refused::Fatal)?;
        let transport = self.client.api().transport();
        transport
            .check(self.client.server())
            .map_err(|e| Refused::Fatal(e.into()))?;
        let (url, connector) = match ws_url(self.client.server()) {
            Some(Secure::Tls(url)) => (url, Connector::Rustls(transport.tls())),
            Some(Secure::Plain(url)) => (url, Connector::Plain),
            None => {
                return Err(Refused::Fatal(Error::Stream(format!(
                    "cannot stream from {}: not an https:// or http:// URL",
                    self.client.server()
                ))))
            }
        };
        let retry = |reason: String| Refused::Retry { code: None, reason };
        // Only the opening is bounded: an open stream lives as long as it is read.
        let connecting =
            tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector));
        let (mut ws, _) = tokio::time::timeout(transport.connect_timeout_value(), connecting)
            .await
            .map_err(|_| retry("connecting timed out".to_owned()))?
            .map_err(|e| retry(format!("cannot connect: {e}")))?;
        let auth = AuthFrame {
            access_token: &token,
            after: Some(self.after),
        };
        let auth = serde_json::to_string(&auth).map_err(|e| retry(e.to_string()))?;
        ws.send(WsMessage::Text(auth.into()))
            .await
            .map_err(|e| retry(e.to_string()))?;
        loop {
            let frame = tokio::time::timeout(transport.request_timeout_value(), ws.next())
                .await
                .map_err(|_| retry("no ready frame in time".to_owned()))?;
            match frame {
                Some(Ok(WsMessage::Text(text))) => match serde_json::from_str::<Frame>(&text) {
                    Ok(Frame::Ready { .. }) => {
                        self.token = token;
                        return Ok(ws);
                    }
                    _ => {
                        return Err(Refused::Fatal(Error::Stream(
                            "the server sent something else than ready".to_owned(),
                        )))
                    }
                },
                Some(Ok(WsMessage::Close(frame))) => {
                    let (code, reason) = close_code(frame);
                    return Err(match code {
                        Some(UNAUTHENTICATED) => Refused::Unauthorized(token),
                        Some(BAD_AUTH_FRAME) => Refused::Fatal(Error::Stream(format!(
                            "the server refused the auth frame: {reason}"
                        ))),
                        code => Refused::Retry { code, reason },
                    });
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(retry(e.to_string())),
                None => return Err(retry("the connection closed".to_owned())),
            }
        }
    }
}

/// Sends a new access token on an open stream (no `after`: the stream goes on where it is).
async fn reauth(ws: &mut Ws, token: &Secret) -> Result<(), String> {
    let frame = AuthFrame {
        access_token: token,
        after: None,
    };
    let frame = serde_json::to_string(&frame).map_err(|e| e.to_string())?;
    ws.send(WsMessage::Text(frame.into()))
        .await
        .map_err(|e| format!("cannot re-authenticate the stream: {e}"))
}

fn close_code(frame: Option<CloseFrame>) -> (Option<u16>, String) {
    match frame {
        Some(frame) => (Some(u16::from(frame.code)), frame.reason.to_string()),
        None => (None, "closed without a code".to_owned()),
    }
}

/// 100 ms, 200 ms, 400 ms, … up to 5 s.
fn backoff(failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(6);
    (Duration::from_millis(100) * 2u32.pow(exponent)).min(MAX_BACKOFF)
}

/// A stream URL, and whether it is over TLS.
#[derive(Debug, PartialEq, Eq)]
enum Secure {
    Tls(String),
    Plain(String),
}

/// `https://host:port` → `wss://host:port/v1/stream`, `http://…` → `ws://…`; `None` for
/// anything else. Whether plain HTTP is allowed is the transport's to say.
fn ws_url(server: &str) -> Option<Secure> {
    if let Some(rest) = server.strip_prefix("https://") {
        return Some(Secure::Tls(format!("wss://{rest}/v1/stream")));
    }
    server
        .strip_prefix("http://")
        .map(|rest| Secure::Plain(format!("ws://{rest}/v1/stream")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        assert_eq!(backoff(1), Duration::from_millis(100));
        assert_eq!(backoff(2), Duration::from_millis(200));
        assert_eq!(backoff(50), MAX_BACKOFF);
    }

    #[test]
    fn urls() {
        assert_eq!(
            ws_url("http://127.0.0.1:8080"),
            Some(Secure::Plain("ws://127.0.0.1:8080/v1/stream".to_owned()))
        );
        assert_eq!(
            ws_url("https://sealpost.example.com"),
            Some(Secure::Tls(
                "wss://sealpost.example.com/v1/stream".to_owned()
            ))
        );
        assert_eq!(ws_url("ftp://sealpost.example.com"), None);
    }
}
