//! A hostile server for tests: [`EvilProxy`] is an HTTP proxy on 127.0.0.1:0 in front of a real
//! server ([`crate::TestApp`]) that forwards every request and can answer in its place or rewrite
//! any answer, as a server under an attacker's control would. It records every request it gets
//! (forwarded or not) and every frame a client sends on a stream, so that a test can tell what a
//! client sent, and what it did not (no login after a refused kdf, no message sealed to a key
//! the user did not accept). [`Accomplice`] is an account the attacker holds the key pair of.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::ws::{self, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt as _, StreamExt as _};
use sealpost_client::api::{Api, LoginRequest, SendRequest};
use sealpost_crypto::KeyPair;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{self as tung, protocol::CloseFrame};
use uuid::Uuid;

use crate::{random, register_request, TestApp};

/// An account whose key pair the attacker holds (anyone can register one; a server's operator
/// can make any number), signed in on the raw API.
#[allow(missing_debug_implementations, reason = "a test handle")]
pub struct Accomplice {
    pub id: Uuid,
    pub email: String,
    pub pair: KeyPair,
    pub api: Api,
}

impl Accomplice {
    /// Registers `name` (a unique email) with a real key pair, and signs in.
    pub async fn register(app: &TestApp, name: &str) -> Accomplice {
        let pair = KeyPair::generate();
        let email = format!("{name}-{}@example.test", Uuid::new_v4().simple());
        let auth_key = random(32);
        let mut request = register_request(&email, &auth_key);
        request.public_key = pair.public().as_bytes().to_vec();
        let mut api = app.api();
        let registered = api.register(&request).await.expect("register");
        let login = api
            .login(&LoginRequest {
                email: email.clone(),
                auth_key: auth_key.into(),
                device_name: None,
            })
            .await
            .expect("login");
        api.set_token(Some(login.access_token));
        Accomplice {
            id: registered.user_id,
            email,
            pair,
            api,
        }
    }

    /// Posts a ciphertext to `to`'s version-1 key, as sent with this account's version 1.
    pub async fn post(&self, to: Uuid, ciphertext: Vec<u8>) -> sealpost_client::api::SendResponse {
        let request = SendRequest {
            to,
            ciphertext,
            key_version: 1,
            sender_key_version: 1,
            sender_copy: None,
        };
        self.api.send(&request).await.expect("send")
    }
}

/// A lookup answer (`GET /v1/users…`) for `user_id`, claiming `email`, with `key` at `version`.
pub fn user_answer(user_id: Uuid, email: &str, version: i64, key: &KeyPair) -> Value {
    json!({
        "user_id": user_id,
        "email": email,
        "public_key": key.public().to_base64(),
        "key_version": version,
    })
}

/// A request the proxy got.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    pub query: String,
    /// The JSON body (`Null` for none).
    pub body: Value,
    /// Whether it went on to the real server (a rule may answer in its place).
    pub forwarded: bool,
}

/// The answer to a request: the real server's, or a rule's.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub status: u16,
    /// The JSON body (`Null` for an empty or non-JSON one, which is passed on as it came).
    pub body: Value,
}

type Intercept = Box<dyn Fn(&Seen) -> Option<Answer> + Send + Sync>;
type Rewrite = Box<dyn Fn(&Seen, &mut Answer) + Send + Sync>;

struct Shared {
    upstream: String,
    http: reqwest::Client,
    intercepts: Mutex<Vec<Intercept>>,
    rewrites: Mutex<Vec<Rewrite>>,
    seen: Mutex<Vec<Seen>>,
    client_frames: Mutex<Vec<String>>,
}

/// The hostile proxy; stops when dropped.
#[allow(missing_debug_implementations, reason = "a test handle")]
pub struct EvilProxy {
    pub addr: SocketAddr,
    /// `http://127.0.0.1:port`: give it to a client instead of the server's.
    pub base: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EvilProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EvilProxy {
    /// A proxy in front of the server at `upstream` (`http://127.0.0.1:port`), honest until told
    /// otherwise.
    pub async fn start(upstream: &str) -> EvilProxy {
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            intercepts: Mutex::default(),
            rewrites: Mutex::default(),
            seen: Mutex::default(),
            client_frames: Mutex::default(),
        });
        let app = Router::new()
            .route("/v1/stream", get(stream))
            .fallback(forward)
            .with_state(Arc::clone(&shared));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        EvilProxy {
            addr,
            base: format!("http://{addr}"),
            shared,
            task,
        }
    }

    /// From now on, answers a request itself when `rule` gives an answer (the request is not
    /// forwarded).
    pub fn intercept(&self, rule: impl Fn(&Seen) -> Option<Answer> + Send + Sync + 'static) {
        lock(&self.shared.intercepts).push(Box::new(rule));
    }

    /// From now on, lets `rule` change every answer (after the earlier rules).
    pub fn rewrite(&self, rule: impl Fn(&Seen, &mut Answer) + Send + Sync + 'static) {
        lock(&self.shared.rewrites).push(Box::new(rule));
    }

    /// Honest again: every rule is dropped (the records stay).
    pub fn behave(&self) {
        lock(&self.shared.intercepts).clear();
        lock(&self.shared.rewrites).clear();
    }

    /// Every request so far, in order.
    pub fn seen(&self) -> Vec<Seen> {
        lock(&self.shared.seen).clone()
    }

    /// How many requests so far had this method and path.
    pub fn count(&self, method: &str, path: &str) -> usize {
        lock(&self.shared.seen)
            .iter()
            .filter(|s| s.method == method && s.path == path)
            .count()
    }

    /// How many messages clients have tried to send through this proxy (`POST /v1/messages`,
    /// forwarded or refused).
    pub fn sends(&self) -> usize {
        self.count("POST", "/v1/messages")
    }

    /// Every text frame clients sent on streams, in order.
    pub fn client_frames(&self) -> Vec<String> {
        lock(&self.shared.client_frames).clone()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Any HTTP call: recorded, then answered by an intercept or by the real server, then rewritten.
async fn forward(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut seen = Seen {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or_default().to_owned(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        forwarded: false,
    };
    let intercepted = lock(&shared.intercepts).iter().find_map(|rule| rule(&seen));
    let (mut answer, raw) = match intercepted {
        Some(answer) => (answer, None),
        None => {
            seen.forwarded = true;
            match upstream(&shared, &method, &uri, &headers, body).await {
                Ok(answered) => answered,
                Err(e) => {
                    lock(&shared.seen).push(seen);
                    return (StatusCode::BAD_GATEWAY, e.to_string()).into_response();
                }
            }
        }
    };
    let original = answer.clone();
    for rule in lock(&shared.rewrites).iter() {
        rule(&seen, &mut answer);
    }
    lock(&shared.seen).push(seen);
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let body = match raw {
        Some((text, content_type)) if answer == original => {
            let mut response = (status, text).into_response();
            if let Some(content_type) = content_type {
                response
                    .headers_mut()
                    .insert(axum::http::header::CONTENT_TYPE, content_type);
            }
            return response;
        }
        _ => answer.body,
    };
    if body.is_null() {
        return status.into_response();
    }
    (status, axum::Json(body)).into_response()
}

/// Sends the request on to the real server: its answer, and its raw body and content type.
async fn upstream(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<(Answer, Option<(Bytes, Option<HeaderValue>)>), reqwest::Error> {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let method = reqwest::Method::from_bytes(method.as_str().as_bytes()).unwrap_or_default();
    let mut request = shared
        .http
        .request(method, format!("{}{path}", shared.upstream));
    for name in ["authorization", "content-type"] {
        if let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) {
            request = request.header(name, value);
        }
    }
    let response = request.body(body).send().await?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok());
    let bytes = response.bytes().await?;
    let answer = Answer {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    };
    Ok((answer, Some((bytes, content_type))))
}

/// The stream: relayed frame by frame to the real server's, each client text frame recorded.
async fn stream(State(shared): State<Arc<Shared>>, upgrade: WebSocketUpgrade) -> Response {
    upgrade.on_upgrade(move |client| relay(shared, client))
}

async fn relay(shared: Arc<Shared>, client: WebSocket) {
    let url = format!(
        "{}/v1/stream",
        shared.upstream.replacen("http://", "ws://", 1)
    );
    let Ok((server, _)) = tokio_tungstenite::connect_async(url).await else {
        return;
    };
    let (mut to_client, mut from_client) = client.split();
    let (mut to_server, mut from_server) = server.split();
    let up = async {
        while let Some(Ok(message)) = from_client.next().await {
            let message = match message {
                ws::Message::Text(text) => {
                    lock(&shared.client_frames).push(text.to_string());
                    tung::Message::Text(text.as_str().into())
                }
                ws::Message::Binary(data) => tung::Message::Binary(data),
                ws::Message::Ping(data) => tung::Message::Ping(data),
                ws::Message::Pong(data) => tung::Message::Pong(data),
                ws::Message::Close(frame) => tung::Message::Close(frame.map(|f| CloseFrame {
                    code: f.code.into(),
                    reason: f.reason.as_str().into(),
                })),
            };
            if to_server.send(message).await.is_err() {
                break;
            }
        }
    };
    let down = async {
        while let Some(Ok(message)) = from_server.next().await {
            let message = match message {
                tung::Message::Text(text) => ws::Message::Text(text.as_str().into()),
                tung::Message::Binary(data) => ws::Message::Binary(data),
                tung::Message::Ping(data) => ws::Message::Ping(data),
                tung::Message::Pong(data) => ws::Message::Pong(data),
                tung::Message::Close(frame) => ws::Message::Close(frame.map(|f| ws::CloseFrame {
                    code: f.code.into(),
                    reason: f.reason.as_str().into(),
                })),
                tung::Message::Frame(_) => continue,
            };
            if to_client.send(message).await.is_err() {
                break;
            }
        }
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}
