//! The raw typed HTTP layer: one async method per endpoint of PROTOCOL §4 and §5, the wire types
//! with binary values as plain bytes (base64url on the wire, §1), and §4's error shape as
//! [`ApiError`]. No cryptography lives here: what goes in the byte fields is the caller's business.

use std::fmt;

use reqwest::header::{HeaderMap, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// How much of an unexpected body an error message quotes.
const EXCERPT_CHARS: usize = 300;

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

/// A thin client for the Sealpost HTTP API.
///
/// Cheap to clone (the connection pool is shared). It holds at most one access token, sent as
/// `Authorization: Bearer` on the calls that accept one; nothing here refreshes it by itself.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    /// Without a trailing slash, so that `base_url + "/v1/…"` is the endpoint.
    base_url: String,
    access_token: Option<String>,
}

impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api")
            .field("base_url", &self.base_url)
            .field(
                "access_token",
                &self.access_token.as_ref().map(|_| Redacted),
            )
            .finish_non_exhaustive()
    }
}

/// Whether a call carries the bearer token (when one is set).
#[derive(Clone, Copy)]
enum Auth {
    None,
    Bearer,
}

impl Api {
    /// A client for the server at `base_url` (e.g. `http://127.0.0.1:8080`), with a default
    /// `reqwest::Client`.
    pub fn new(base_url: &str) -> Api {
        Api::with_http(base_url, reqwest::Client::new())
    }

    /// A client for the server at `base_url` that sends through `http` (for timeouts, proxies…).
    pub fn with_http(base_url: &str, http: reqwest::Client) -> Api {
        Api {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            access_token: None,
        }
    }

    /// Sets (or, with `None`, forgets) the access token sent on authenticated calls.
    pub fn set_token(&mut self, access_token: Option<String>) {
        self.access_token = access_token;
    }

    /// The access token sent on authenticated calls, if any.
    pub fn token(&self) -> Option<&str> {
        self.access_token.as_deref()
    }

    /// The server's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    // --- §4 --------------------------------------------------------------------------------

    /// `POST /v1/accounts` → 201.
    pub async fn register(&self, req: &RegisterRequest) -> Result<RegisterResponse, ApiError> {
        let call = self
            .request(Method::POST, "/v1/accounts", Auth::None)
            .json(req);
        self.exchange(call).await?.json(StatusCode::CREATED)
    }

    /// `POST /v1/auth/prelogin` → 200 `{kdf}`. The answer is the server's word only: PROTOCOL
    /// §2.1 requires checking its bounds before deriving anything from it.
    pub async fn prelogin(&self, email: &str) -> Result<Kdf, ApiError> {
        #[derive(Serialize)]
        struct Body<'a> {
            email: &'a str,
        }
        #[derive(Deserialize)]
        struct Answer {
            kdf: Kdf,
        }
        let call = self
            .request(Method::POST, "/v1/auth/prelogin", Auth::None)
            .json(&Body { email });
        let answer: Answer = self.exchange(call).await?.json(StatusCode::OK)?;
        Ok(answer.kdf)
    }

    /// `POST /v1/auth/login` → 200. Does not store the token it gets: see [`Api::set_token`].
    pub async fn login(&self, req: &LoginRequest) -> Result<LoginResponse, ApiError> {
        let call = self
            .request(Method::POST, "/v1/auth/login", Auth::None)
            .json(req);
        self.exchange(call).await?.json(StatusCode::OK)
    }

    /// `POST /v1/auth/refresh` → 200 with a new pair; the old refresh token is dead afterwards.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, ApiError> {
        #[derive(Serialize)]
        struct Body<'a> {
            refresh_token: &'a str,
        }
        let call = self
            .request(Method::POST, "/v1/auth/refresh", Auth::None)
            .json(&Body { refresh_token });
        self.exchange(call).await?.json(StatusCode::OK)
    }

    /// `POST /v1/auth/logout` (bearer) → 204: this session is revoked.
    pub async fn logout(&self) -> Result<(), ApiError> {
        let call = self.request(Method::POST, "/v1/auth/logout", Auth::Bearer);
        self.exchange(call).await?.empty(StatusCode::NO_CONTENT)
    }

    /// `GET /v1/sessions` (bearer) → 200 `{sessions}`.
    pub async fn sessions(&self) -> Result<Vec<Session>, ApiError> {
        #[derive(Deserialize)]
        struct Answer {
            sessions: Vec<Session>,
        }
        let call = self.request(Method::GET, "/v1/sessions", Auth::Bearer);
        let answer: Answer = self.exchange(call).await?.json(StatusCode::OK)?;
        Ok(answer.sessions)
    }

    /// `DELETE /v1/sessions/{id}` (bearer) → 204.
    pub async fn revoke_session(&self, id: Uuid) -> Result<(), ApiError> {
        let path = format!("/v1/sessions/{id}");
        let call = self.request(Method::DELETE, &path, Auth::Bearer);
        self.exchange(call).await?.empty(StatusCode::NO_CONTENT)
    }

    /// `GET /v1/users/{user_id}` (bearer) → 200, the user's newest key.
    pub async fn user(&self, id: Uuid) -> Result<UserInfo, ApiError> {
        let path = format!("/v1/users/{id}");
        let call = self.request(Method::GET, &path, Auth::Bearer);
        self.exchange(call).await?.json(StatusCode::OK)
    }

    /// `GET /v1/users?email=` (bearer) → 200; the email is URL-encoded here.
    pub async fn user_by_email(&self, email: &str) -> Result<UserInfo, ApiError> {
        let call = self
            .request(Method::GET, "/v1/users", Auth::Bearer)
            .query(&[("email", email)]);
        self.exchange(call).await?.json(StatusCode::OK)
    }

    /// `GET /v1/users/{user_id}/keys/{key_version}` (bearer) → 200; still answers for a deleted
    /// account (`deleted: true`).
    pub async fn user_key(&self, id: Uuid, key_version: i64) -> Result<UserInfo, ApiError> {
        let path = format!("/v1/users/{id}/keys/{key_version}");
        let call = self.request(Method::GET, &path, Auth::Bearer);
        self.exchange(call).await?.json(StatusCode::OK)
    }

    /// `POST /v1/messages` (bearer) → 201, the recipient's entry.
    pub async fn send(&self, req: &SendRequest) -> Result<SendResponse, ApiError> {
        let call = self
            .request(Method::POST, "/v1/messages", Auth::Bearer)
            .json(req);
        self.exchange(call).await?.json(StatusCode::CREATED)
    }

    /// `GET /v1/messages?after=|before=&limit=` (bearer) → 200. The answer's cursor for the
    /// direction asked (`next_after` or `next_before`) is required: without it the page is
    /// refused as [`ApiError::Protocol`], so a caller can page on it without checking.
    pub async fn messages(&self, page: Page) -> Result<MessagePage, ApiError> {
        let (bound, limit) = match page {
            Page::After { after, limit } => (("after", after), limit),
            Page::Before { before, limit } => (("before", before), limit),
        };
        let mut query = vec![bound];
        if let Some(limit) = limit {
            query.push(("limit", i64::from(limit)));
        }
        let call = self
            .request(Method::GET, "/v1/messages", Auth::Bearer)
            .query(&query);
        let answer = self.exchange(call).await?;
        let label = answer.label.clone();
        let page_answer: MessagePage = answer.json(StatusCode::OK)?;
        let cursor = match page {
            Page::After { .. } => page_answer.next_after.map(|_| ()).ok_or("next_after"),
            Page::Before { .. } => page_answer.next_before.map(|_| ()).ok_or("next_before"),
        };
        match cursor {
            Ok(()) => Ok(page_answer),
            Err(name) => Err(ApiError::Protocol(format!(
                "{label}: 200 OK without `{name}`"
            ))),
        }
    }

    /// `DELETE /v1/messages/{id}` (bearer) → 204.
    pub async fn delete_message(&self, id: Uuid) -> Result<(), ApiError> {
        let path = format!("/v1/messages/{id}");
        let call = self.request(Method::DELETE, &path, Auth::Bearer);
        self.exchange(call).await?.empty(StatusCode::NO_CONTENT)
    }

    /// `GET /healthz`: any 2xx is alive; the body is not looked at.
    pub async fn healthz(&self) -> Result<(), ApiError> {
        let call = self.request(Method::GET, "/healthz", Auth::None);
        self.exchange(call).await?.success().map(drop)
    }

    /// `GET /readyz`: any 2xx is ready (database reachable); the body is not looked at.
    pub async fn readyz(&self) -> Result<(), ApiError> {
        let call = self.request(Method::GET, "/readyz", Auth::None);
        self.exchange(call).await?.success().map(drop)
    }

    /// `GET /metrics` → 200, Prometheus text as is.
    pub async fn metrics(&self) -> Result<String, ApiError> {
        let call = self.request(Method::GET, "/metrics", Auth::None);
        let answer = self.exchange(call).await?;
        answer.expect(Some(StatusCode::OK))?;
        Ok(answer.text)
    }

    /// `GET /v1/openapi.json` → 200, the OpenAPI document as JSON.
    pub async fn openapi(&self) -> Result<serde_json::Value, ApiError> {
        let call = self.request(Method::GET, "/v1/openapi.json", Auth::None);
        self.exchange(call).await?.json(StatusCode::OK)
    }

    // --- §5 --------------------------------------------------------------------------------

    /// `PUT /v1/account/password` → 204. Sends the bearer token when one is set; for a reset
    /// with a `recovery_token`, a caller that has no session simply has none set.
    pub async fn change_password(&self, req: &ChangePasswordRequest) -> Result<(), ApiError> {
        let call = self
            .request(Method::PUT, "/v1/account/password", Auth::Bearer)
            .json(req);
        self.exchange(call).await?.empty(StatusCode::NO_CONTENT)
    }

    /// `PUT /v1/account/recovery` (bearer) → 204: the old recovery key stops working.
    pub async fn set_recovery(&self, req: &SetRecoveryRequest) -> Result<(), ApiError> {
        let call = self
            .request(Method::PUT, "/v1/account/recovery", Auth::Bearer)
            .json(req);
        self.exchange(call).await?.empty(StatusCode::NO_CONTENT)
    }

    /// `POST /v1/auth/recover` → 200 with a single-use `recovery_token` (10 minutes) and the
    /// recovery wrap of the account key.
    pub async fn recover(
        &self,
        email: &str,
        recovery_auth_key: &[u8],
    ) -> Result<RecoverResponse, ApiError> {
        #[derive(Serialize)]
        struct Body<'a> {
            email: &'a str,
            #[serde(serialize_with = "b64::serialize")]
            recovery_auth_key: &'a [u8],
        }
        let call = self
            .request(Method::POST, "/v1/auth/recover", Auth::None)
            .json(&Body {
                email,
                recovery_auth_key,
            });
        self.exchange(call).await?.json(StatusCode::OK)
    }

    /// `POST /v1/keys/rotate` (bearer) → 204.
    pub async fn rotate_keys(&self, req: &RotateRequest) -> Result<(), ApiError> {
        let call = self
            .request(Method::POST, "/v1/keys/rotate", Auth::Bearer)
            .json(req);
        self.exchange(call).await?.empty(StatusCode::NO_CONTENT)
    }

    /// `POST /v1/account/delete` (bearer) → 204.
    pub async fn delete_account(&self, current_auth_key: &[u8]) -> Result<(), ApiError> {
        #[derive(Serialize)]
        struct Body<'a> {
            #[serde(serialize_with = "b64::serialize")]
            current_auth_key: &'a [u8],
        }
        let call = self
            .request(Method::POST, "/v1/account/delete", Auth::Bearer)
            .json(&Body { current_auth_key });
        self.exchange(call).await?.empty(StatusCode::NO_CONTENT)
    }

    // --- anything ----------------------------------------------------------------------------

    /// Sends anything to `path` (below the base URL, query string included) with the bearer
    /// token when one is set, and hands back whatever comes back, whatever the status: for tests
    /// of error paths. Only a request that gets no answer is an error.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: RawBody,
    ) -> Result<RawResponse, ApiError> {
        let path = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        let call = self.request(method, &path, Auth::Bearer);
        let call = match body {
            RawBody::None => call,
            RawBody::Json(value) => call.json(&value),
            RawBody::Text { content_type, body } => match content_type {
                Some(content_type) => call.header(CONTENT_TYPE, content_type).body(body),
                None => call.body(body),
            },
        };
        let answer = self.exchange(call).await?;
        Ok(RawResponse {
            status: answer.status.as_u16(),
            json: serde_json::from_str(&answer.text).unwrap_or(serde_json::Value::Null),
            headers: answer.headers,
            text: answer.text,
        })
    }

    // --- plumbing ------------------------------------------------------------------------------

    fn request(&self, method: Method, path: &str, auth: Auth) -> RequestBuilder {
        let builder = self
            .http
            .request(method, format!("{}{path}", self.base_url));
        match (auth, &self.access_token) {
            // `bearer_auth` marks the header sensitive, so reqwest's own Debug hides it too.
            (Auth::Bearer, Some(token)) => builder.bearer_auth(token),
            _ => builder,
        }
    }

    /// Sends the request and reads the whole answer, without judging it yet.
    async fn exchange(&self, builder: RequestBuilder) -> Result<Answer, ApiError> {
        let (client, request) = builder.build_split();
        let request = request?;
        // The path only: a query string may hold an email address.
        let label = format!("{} {}", request.method(), request.url().path());
        let response = client.execute(request).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await?;
        Ok(Answer {
            label,
            status,
            headers,
            text,
        })
    }
}

/// A whole answer, before it is judged against what the call expects.
struct Answer {
    /// `METHOD /path`, for error messages.
    label: String,
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

impl Answer {
    /// Passes any 2xx (or, with `expected`, only that status); otherwise the error it is.
    fn expect(&self, expected: Option<StatusCode>) -> Result<(), ApiError> {
        if !self.status.is_success() {
            return Err(error_from(
                &self.label,
                self.status,
                &self.headers,
                &self.text,
            ));
        }
        match expected {
            Some(expected) if expected != self.status => Err(ApiError::Protocol(format!(
                "{}: expected {expected}, got {}: {}",
                self.label,
                self.status,
                excerpt(&self.text)
            ))),
            _ => Ok(()),
        }
    }

    fn success(self) -> Result<Self, ApiError> {
        self.expect(None)?;
        Ok(self)
    }

    fn empty(self, expected: StatusCode) -> Result<(), ApiError> {
        self.expect(Some(expected))
    }

    fn json<T: DeserializeOwned>(self, expected: StatusCode) -> Result<T, ApiError> {
        self.expect(Some(expected))?;
        serde_json::from_str(&self.text).map_err(|e| {
            ApiError::Protocol(format!(
                "{}: {} with a body that does not fit ({e}): {}",
                self.label,
                self.status,
                excerpt(&self.text)
            ))
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------------

/// What a call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server answered with PROTOCOL §4's error shape (any non-2xx status).
    #[error(
        "{status} {code}: {message}{}",
        .field.as_deref().map(|f| format!(" (field `{f}`)")).unwrap_or_default()
    )]
    Server {
        status: u16,
        code: String,
        message: String,
        field: Option<String>,
        /// `Retry-After` in seconds, when the server sent one (429, 503).
        retry_after: Option<u64>,
    },
    /// The request did not get an answer (connection refused, timeout, …).
    #[error("no answer from the server: {0}")]
    Transport(#[from] reqwest::Error),
    /// The server answered something that is not the protocol: a non-2xx without the error
    /// shape, another 2xx than the call's, or a body that does not fit. Says which, with an
    /// excerpt of the body.
    #[error("the server's answer is not the protocol: {0}")]
    Protocol(String),
}

impl ApiError {
    /// The HTTP status of a [`ApiError::Server`] error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Server { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The machine code of a [`ApiError::Server`] error (`stale_key`, `not_found`, …).
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Server { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The JSON field at fault in a [`ApiError::Server`] error, as a dotted path.
    pub fn field(&self) -> Option<&str> {
        match self {
            ApiError::Server { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    /// `Retry-After` in seconds of a [`ApiError::Server`] error, when sent.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Reads a non-2xx answer as §4's `{"error":{code,message,field}}`, or says it is not that.
fn error_from(label: &str, status: StatusCode, headers: &HeaderMap, text: &str) -> ApiError {
    #[derive(Deserialize)]
    struct Envelope {
        error: Body,
    }
    #[derive(Deserialize)]
    struct Body {
        code: String,
        message: String,
        #[serde(default)]
        field: Option<String>,
    }
    match serde_json::from_str::<Envelope>(text) {
        Ok(Envelope { error }) => ApiError::Server {
            status: status.as_u16(),
            code: error.code,
            message: error.message,
            field: error.field,
            retry_after: headers
                .get(RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse().ok()),
        },
        Err(_) => ApiError::Protocol(format!(
            "{label}: {status} without the error shape: {}",
            excerpt(text)
        )),
    }
}

/// The start of a body, for an error message.
fn excerpt(text: &str) -> String {
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    let mut chars = text.chars();
    let mut quoted: String = chars.by_ref().take(EXCERPT_CHARS).collect();
    if chars.next().is_some() {
        quoted.push('…');
    }
    quoted
}

// ---------------------------------------------------------------------------------------------
// Wire types (§4, §5)
// ---------------------------------------------------------------------------------------------

/// The password hashing parameters of an account (§2.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kdf {
    /// `argon2id13`.
    pub alg: String,
    #[serde(with = "b64")]
    pub salt: Vec<u8>,
    pub opslimit: u64,
    pub memlimit: u64,
}

/// The recovery key's proof and its wrap of the account key (§2.3).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryWrap {
    /// `recovery_auth_key`: secret.
    #[serde(with = "b64")]
    pub auth_key: Vec<u8>,
    #[serde(with = "b64")]
    pub wrapped_account_key: Vec<u8>,
}

/// `POST /v1/accounts`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterRequest {
    pub email: String,
    pub kdf: Kdf,
    /// Secret.
    #[serde(with = "b64")]
    pub auth_key: Vec<u8>,
    #[serde(with = "b64")]
    pub wrapped_account_key: Vec<u8>,
    #[serde(with = "b64")]
    pub public_key: Vec<u8>,
    #[serde(with = "b64")]
    pub wrapped_secret_key: Vec<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery: Option<RecoveryWrap>,
}

/// The answer to `POST /v1/accounts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterResponse {
    pub user_id: Uuid,
    pub key_version: i64,
}

/// `POST /v1/auth/login`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRequest {
    pub email: String,
    /// Secret.
    #[serde(with = "b64")]
    pub auth_key: Vec<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
}

/// One key version of an account, its secret key wrapped under the account key (§2.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInfo {
    #[serde(with = "b64")]
    pub public_key: Vec<u8>,
    pub key_version: i64,
    #[serde(with = "b64")]
    pub wrapped_secret_key: Vec<u8>,
}

/// The answer to `POST /v1/auth/login`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginResponse {
    pub user_id: Uuid,
    pub session_id: Uuid,
    /// Secret.
    pub access_token: String,
    /// Secret.
    pub refresh_token: String,
    /// Seconds.
    pub expires_in: u64,
    #[serde(with = "b64")]
    pub wrapped_account_key: Vec<u8>,
    /// The newest version.
    pub keys: KeyInfo,
    /// The older versions, newest first.
    pub previous_keys: Vec<KeyInfo>,
}

/// The answer to `POST /v1/auth/refresh`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPair {
    /// Secret.
    pub access_token: String,
    /// Secret.
    pub refresh_token: String,
    /// Seconds.
    pub expires_in: u64,
}

/// One of the caller's sessions (`GET /v1/sessions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: Uuid,
    #[serde(default)]
    pub device_name: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_used_at: OffsetDateTime,
    /// The session making this call.
    pub current: bool,
}

/// A user's public key at one version (`GET /v1/users/…`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    pub user_id: Uuid,
    /// `None` for a deleted account (§5).
    #[serde(default)]
    pub email: Option<String>,
    #[serde(with = "b64")]
    pub public_key: Vec<u8>,
    pub key_version: i64,
    /// Only ever `true` from `GET /v1/users/{id}/keys/{v}`.
    #[serde(default)]
    pub deleted: bool,
}

/// `POST /v1/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendRequest {
    pub to: Uuid,
    #[serde(with = "b64")]
    pub ciphertext: Vec<u8>,
    /// The recipient's version the envelope is sealed to.
    pub key_version: i64,
    /// The sender's own version whose secret key made the inner box.
    pub sender_key_version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender_copy: Option<SenderCopy>,
}

/// The same payload sealed to the sender's own newest key (§3.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderCopy {
    #[serde(with = "b64")]
    pub ciphertext: Vec<u8>,
    pub key_version: i64,
}

/// The answer to `POST /v1/messages`: the recipient's entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendResponse {
    pub id: Uuid,
    pub seq: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// A mailbox entry, still sealed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub id: Uuid,
    pub seq: i64,
    pub from: Uuid,
    pub to: Uuid,
    #[serde(with = "b64")]
    pub ciphertext: Vec<u8>,
    pub key_version: i64,
    pub sender_key_version: i64,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// Which page of the mailbox to fetch (`GET /v1/messages`); both bounds are exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page {
    /// Entries with `seq > after`, ascending.
    After { after: i64, limit: Option<u32> },
    /// Entries with `seq < before`, newest first (`i64::MAX` starts at the newest).
    Before { before: i64, limit: Option<u32> },
}

impl Default for Page {
    /// From the start of the mailbox, with the server's default limit.
    fn default() -> Self {
        Page::After {
            after: 0,
            limit: None,
        }
    }
}

/// One page of the mailbox; the cursor for the direction asked is always there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessagePage {
    pub messages: Vec<Message>,
    /// For [`Page::After`]: the last `seq` returned, or the bound given when the page is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_after: Option<i64>,
    /// For [`Page::Before`]: the last `seq` returned, or the bound given when the page is empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_before: Option<i64>,
}

/// `PUT /v1/account/password`: exactly one of `current_auth_key` and `recovery_token`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangePasswordRequest {
    /// Secret.
    #[serde(default, with = "b64::option", skip_serializing_if = "Option::is_none")]
    pub current_auth_key: Option<Vec<u8>>,
    /// Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_token: Option<String>,
    pub kdf: Kdf,
    /// Secret.
    #[serde(with = "b64")]
    pub auth_key: Vec<u8>,
    #[serde(with = "b64")]
    pub wrapped_account_key: Vec<u8>,
}

/// `PUT /v1/account/recovery`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetRecoveryRequest {
    /// Secret.
    #[serde(with = "b64")]
    pub current_auth_key: Vec<u8>,
    pub recovery: RecoveryWrap,
}

/// The answer to `POST /v1/auth/recover`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverResponse {
    /// Secret: single use, 10 minutes.
    pub recovery_token: String,
    /// The recovery wrap of the account key.
    #[serde(with = "b64")]
    pub wrapped_account_key: Vec<u8>,
}

/// `POST /v1/keys/rotate`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateRequest {
    /// Secret.
    #[serde(with = "b64")]
    pub current_auth_key: Vec<u8>,
    #[serde(with = "b64")]
    pub public_key: Vec<u8>,
    /// The newest version + 1.
    pub key_version: i64,
    #[serde(with = "b64")]
    pub wrapped_secret_key: Vec<u8>,
}

/// The body of [`Api::raw`].
#[derive(Debug, Clone, PartialEq)]
pub enum RawBody {
    /// No body, no content type.
    None,
    /// A JSON body with `Content-Type: application/json`.
    Json(serde_json::Value),
    /// Any text, with the given content type (or none at all).
    Text {
        content_type: Option<String>,
        body: String,
    },
}

/// Whatever [`Api::raw`] got back.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    /// The body as JSON, or `Null` when it is empty or not JSON.
    pub json: serde_json::Value,
    /// The body as text.
    pub text: String,
}

// ---------------------------------------------------------------------------------------------
// Debug without secrets
// ---------------------------------------------------------------------------------------------

/// Stands in for a secret in `Debug` output.
struct Redacted;

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Shows how long a byte string is, not what it holds: for the account key wrapped under the
/// password's key, which would let a reader of logs test password guesses offline.
struct Len<'a>(&'a [u8]);

impl fmt::Debug for Len<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

fn redacted<T>(secret: &Option<T>) -> Option<Redacted> {
    secret.as_ref().map(|_| Redacted)
}

impl fmt::Debug for RecoveryWrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoveryWrap")
            .field("auth_key", &Redacted)
            .field("wrapped_account_key", &Len(&self.wrapped_account_key))
            .finish()
    }
}

impl fmt::Debug for RegisterRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisterRequest")
            .field("email", &self.email)
            .field("kdf", &self.kdf)
            .field("auth_key", &Redacted)
            .field("wrapped_account_key", &Len(&self.wrapped_account_key))
            .field("public_key", &self.public_key)
            .field("wrapped_secret_key", &self.wrapped_secret_key)
            .field("recovery", &self.recovery)
            .finish()
    }
}

impl fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginRequest")
            .field("email", &self.email)
            .field("auth_key", &Redacted)
            .field("device_name", &self.device_name)
            .finish()
    }
}

impl fmt::Debug for LoginResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginResponse")
            .field("user_id", &self.user_id)
            .field("session_id", &self.session_id)
            .field("access_token", &Redacted)
            .field("refresh_token", &Redacted)
            .field("expires_in", &self.expires_in)
            .field("wrapped_account_key", &Len(&self.wrapped_account_key))
            .field("keys", &self.keys)
            .field("previous_keys", &self.previous_keys)
            .finish()
    }
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_token", &Redacted)
            .field("refresh_token", &Redacted)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

impl fmt::Debug for ChangePasswordRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChangePasswordRequest")
            .field("current_auth_key", &redacted(&self.current_auth_key))
            .field("recovery_token", &redacted(&self.recovery_token))
            .field("kdf", &self.kdf)
            .field("auth_key", &Redacted)
            .field("wrapped_account_key", &Len(&self.wrapped_account_key))
            .finish()
    }
}

impl fmt::Debug for SetRecoveryRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetRecoveryRequest")
            .field("current_auth_key", &Redacted)
            .field("recovery", &self.recovery)
            .finish()
    }
}

impl fmt::Debug for RecoverResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecoverResponse")
            .field("recovery_token", &Redacted)
            .field("wrapped_account_key", &Len(&self.wrapped_account_key))
            .finish()
    }
}

impl fmt::Debug for RotateRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RotateRequest")
            .field("current_auth_key", &Redacted)
            .field("public_key", &self.public_key)
            .field("key_version", &self.key_version)
            .field("wrapped_secret_key", &self.wrapped_secret_key)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// Binary fields as canonical base64url (§1)
// ---------------------------------------------------------------------------------------------

/// `#[serde(with = "b64")]` for `Vec<u8>`; reading refuses any non-canonical text.
pub(crate) mod b64 {
    use serde::de::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S, B>(bytes: &B, serializer: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        B: AsRef<[u8]> + ?Sized,
    {
        serializer.serialize_str(&sealpost_crypto::b64::encode(bytes.as_ref()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        sealpost_crypto::b64::decode(&text).map_err(D::Error::custom)
    }

    /// `#[serde(with = "b64::option")]` for `Option<Vec<u8>>`.
    pub mod option {
        use super::*;

        pub fn serialize<S: Serializer>(
            bytes: &Option<Vec<u8>>,
            serializer: S,
        ) -> Result<S::Ok, S::Error> {
            match bytes {
                Some(bytes) => super::serialize(bytes, serializer),
                None => serializer.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Vec<u8>>, D::Error> {
            Option::<String>::deserialize(deserializer)?
                .map(|text| sealpost_crypto::b64::decode(&text).map_err(D::Error::custom))
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests;
