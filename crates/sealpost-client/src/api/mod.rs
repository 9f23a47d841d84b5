//! The raw typed HTTP layer: one async method per endpoint of PROTOCOL §4 and §5 on [`Api`], the
//! wire types with binary values as plain bytes and credentials as [`Secret`] / [`SecretBytes`]
//! (base64url on the wire, §1), and §4's error shape as [`ApiError`]. No cryptography lives here:
//! what goes in the byte fields is the caller's business.
//!
//! Layout: this file is the client, one method per endpoint; `types` holds the wire types,
//! `error` the error and how an error answer is read, `answer` how an answer is judged against
//! what a call expects, and `b64` the serde of binary fields.

use std::fmt;

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

mod answer;
pub(crate) mod b64;
mod error;
mod types;

pub use error::ApiError;
pub use sealpost_proto::{Secret, SecretBytes};
pub use types::*;

use answer::Answer;

use crate::transport::{Transport, TransportError};

/// A thin client for the Sealpost HTTP API.
///
/// Cheap to clone (the connection pool is shared). It holds at most one access token, sent as
/// `Authorization: Bearer` on the calls that accept one; nothing here refreshes it by itself.
/// Every call first checks the URL against the [`Transport`]'s rule (PROTOCOL §7), so nothing
/// is sent over plain HTTP to a host that is not loopback unless the user opted in.
#[derive(Clone)]
pub struct Api {
    http: reqwest::Client,
    /// Without a trailing slash, so that `base_url + "/v1/…"` is the endpoint.
    base_url: String,
    access_token: Option<Secret>,
    /// What `http` was made from; the stream connects with it too.
    transport: Transport,
}

/// Not derived: reqwest's own `Debug` of its client is long, and shows proxy settings.
impl fmt::Debug for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Api")
            .field("base_url", &self.base_url)
            .field("access_token", &self.access_token)
            .field("transport", &self.transport)
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
    /// A client for the server at `base_url` (e.g. `https://sealpost.example.com`) with the
    /// default [`Transport`]. A URL the transport rule refuses is refused by each call, before
    /// anything is sent; [`Api::with_transport`] refuses it at once.
    #[expect(
        clippy::expect_used,
        reason = "fails only where reqwest::Client::new panics too: TLS settings that this crate \
                  made for reqwest's own rustls, and a resolver that cannot start"
    )]
    pub fn new(base_url: &str) -> Api {
        let transport = Transport::new();
        let http = transport
            .http_client()
            .expect("the default HTTP client can be made");
        Api::assemble(base_url, http, transport)
    }

    /// A client for the server at `base_url` reached as `transport` says (trusted CAs, plain
    /// HTTP, timeouts); refuses a URL that breaks the transport rule (PROTOCOL §7) before
    /// anything is sent.
    pub fn with_transport(base_url: &str, transport: &Transport) -> Result<Api, TransportError> {
        transport.check(base_url)?;
        let http = transport.http_client()?;
        Ok(Api::assemble(base_url, http, transport.clone()))
    }

    fn assemble(base_url: &str, http: reqwest::Client, transport: Transport) -> Api {
        Api {
            http,
            base_url: base_url.trim_end_matches('/').to_owned(),
            access_token: None,
            transport,
        }
    }

    /// Sets (or, with `None`, forgets) the access token sent on authenticated calls.
    pub fn set_token(&mut self, access_token: Option<Secret>) {
        self.access_token = access_token;
    }

    /// The access token sent on authenticated calls, if any.
    pub fn token(&self) -> Option<&Secret> {
        self.access_token.as_ref()
    }

    /// The server's base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// How this client reaches the server.
    pub fn transport(&self) -> &Transport {
        &self.transport
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
    pub async fn refresh(&self, refresh_token: &Secret) -> Result<TokenPair, ApiError> {
        #[derive(Serialize)]
        struct Body<'a> {
            refresh_token: &'a Secret,
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

    /// `GET /v1/users/{user_id}/keys` (bearer) → 200, every key version, ascending (a deleted
    /// account's too, with `deleted: true`): what a client pins at first contact (§6).
    pub async fn user_keys(&self, id: Uuid) -> Result<KeyList, ApiError> {
        let path = format!("/v1/users/{id}/keys");
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
        recovery_auth_key: &SecretBytes,
    ) -> Result<RecoverResponse, ApiError> {
        #[derive(Serialize)]
        struct Body<'a> {
            email: &'a str,
            recovery_auth_key: &'a SecretBytes,
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
    pub async fn delete_account(&self, current_auth_key: &SecretBytes) -> Result<(), ApiError> {
        #[derive(Serialize)]
        struct Body<'a> {
            current_auth_key: &'a SecretBytes,
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
            (Auth::Bearer, Some(token)) => builder.bearer_auth(token.expose()),
            _ => builder,
        }
    }

    /// Sends the request and reads the whole answer, without judging it yet.
    async fn exchange(&self, builder: RequestBuilder) -> Result<Answer, ApiError> {
        self.transport.check(&self.base_url)?;
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

#[cfg(test)]
mod tests;
