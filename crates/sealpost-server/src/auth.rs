//! Signing in and out: prelogin, login, refresh, logout, and the session list (PROTOCOL §4, §4.3).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use sealpost_crypto::b64;

use sealpost_proto::{Secret, SecretBytes};

use crate::bearer::Auth;
use crate::clock::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientAddr, Fields, JsonBody};
use crate::hub::Control;
use crate::limits::Action;
use crate::state::AppState;
use crate::store::{Kdf, NewSession, Opened, Refreshed, Rotation};
use crate::tokens::{hash_token, new_opaque_token, Claims};
use crate::validate::{self, rfc3339, KdfWire};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(prelogin))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(list_sessions))
        .routes(routes!(revoke_session))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreloginRequest {
    email: String,
}

impl Fields for PreloginRequest {
    const FIELDS: &'static [&'static str] = &["email"];
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PreloginResponse {
    kdf: KdfWire,
}

/// The KDF parameters to derive an account's keys with. An unknown email gets a stable fake
/// answer of the same shape, so this call never tells who has an account.
#[utoipa::path(post, path = "/v1/auth/prelogin", tag = "auth", request_body = PreloginRequest,
    responses((status = 200, body = PreloginResponse), (status = 400), (status = 429)))]
async fn prelogin(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    JsonBody(req): JsonBody<PreloginRequest>,
) -> ApiResult<Json<PreloginResponse>> {
    let email = validate::email("email", &req.email)?;
    state.rate.check(Action::Prelogin, addr, Some(&email))?;
    let kdf = match state.store.kdf(&email).await? {
        Some(kdf) => kdf,
        None => Kdf {
            salt: state.prelogin_key.fake_salt(&email),
            opslimit: state.config.kdf_opslimit as i64,
            memlimit: state.config.kdf_memlimit as i64,
        },
    };
    Ok(Json(PreloginResponse {
        kdf: KdfWire::from_store(&kdf),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    email: String,
    /// 32 bytes (PROTOCOL §2.1), never the password.
    #[schema(value_type = String)]
    auth_key: Secret,
    device_name: Option<String>,
}

impl Fields for LoginRequest {
    const FIELDS: &'static [&'static str] = &["email", "auth_key", "device_name"];
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyWire {
    public_key: String,
    key_version: i64,
    wrapped_secret_key: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    user_id: Uuid,
    session_id: Uuid,
    #[schema(value_type = String)]
    access_token: Secret,
    #[schema(value_type = String)]
    refresh_token: Secret,
    /// Seconds.
    expires_in: u64,
    wrapped_account_key: String,
    /// The newest key version.
    keys: KeyWire,
    /// The older versions, newest first.
    previous_keys: Vec<KeyWire>,
}

/// Sign in with the `auth_key` derived from the password.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = LoginResponse), (status = 400), (status = 401), (status = 429)))]
async fn login(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    JsonBody(req): JsonBody<LoginRequest>,
) -> ApiResult<Json<LoginResponse>> {
    // On its way to the writer from here: a batch that starts meanwhile waits for it.
    let intent = state.writer.intend();
    let email = validate::email("email", &req.email)?;
    let auth_key = validate::bytes("auth_key", req.auth_key.expose(), 32)?;
    // Counted as sent (before trimming), so that the limit is the one the OpenAPI document gives.
    let device_name = match req.device_name.as_deref() {
        Some(name) if name.chars().count() > 100 => {
            return Err(ApiError::invalid(
                "device_name",
                "device_name is at most 100 characters",
            ))
        }
        Some(name) if name.trim().is_empty() => None,
        Some(name) => Some(name.trim().to_owned()),
        None => None,
    };
    state.rate.check(Action::Login, addr, None)?;
    state.rate.check_failures(&email, addr)?;
    let now = now_ms();
    let (refresh_token, refresh_hash) = new_opaque_token();
    // The credentials are read, compared (in constant time) and the session opened in one
    // group-committed transaction.
    let opened = state
        .writer
        .open_session(
            intent,
            NewSession {
                email: email.clone(),
                presented: SecretBytes::new(validate::sha256(&auth_key)),
                device_name,
                refresh_hash,
                now,
                expires_at: refresh_expiry(&state, now),
            },
        )
        .await?;
    let Some(Opened {
        user_id,
        session_id,
        keyring,
    }) = opened
    else {
        state.rate.failed(&email, addr);
        return Err(ApiError::unauthenticated("wrong email or password"));
    };
    state.rate.signed_in(&email, addr);
    let (access_token, expires_in) = access_token(&state, user_id, session_id, now);
    let mut keys = keyring.keys.into_iter().map(|k| KeyWire {
        public_key: b64::encode(&k.public_key),
        key_version: k.key_version,
        wrapped_secret_key: k
            .wrapped_secret_key
            .as_deref()
            .map(b64::encode)
            .unwrap_or_default(),
    });
    let newest = keys
        .next()
        .ok_or_else(|| anyhow::anyhow!("account {user_id} has no key"))?;
    tracing::info!(%user_id, %session_id, "signed in");
    Ok(Json(LoginResponse {
        user_id,
        session_id,
        access_token: access_token.into(),
        refresh_token: refresh_token.into(),
        expires_in,
        wrapped_account_key: b64::encode(&keyring.wrapped_account_key),
        keys: newest,
        previous_keys: keys.collect(),
    }))
}

fn refresh_expiry(state: &AppState, now: i64) -> i64 {
    now + (state.config.refresh_token_ttl as i64) * 1000
}

/// Mints an access token for a session: (token, expires_in seconds).
pub fn access_token(
    state: &AppState,
    user_id: Uuid,
    session_id: Uuid,
    now_ms: i64,
) -> (String, u64) {
    let ttl = state.config.access_token_ttl();
    let iat = now_ms / 1000;
    let claims = Claims {
        sub: user_id,
        sid: session_id,
        iat,
        exp: iat + ttl.as_secs() as i64,
    };
    (state.jwt.sign(&claims), ttl.as_secs())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[schema(value_type = String)]
    refresh_token: Secret,
}

impl Fields for RefreshRequest {
    const FIELDS: &'static [&'static str] = &["refresh_token"];
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenPair {
    #[schema(value_type = String)]
    pub(crate) access_token: Secret,
    #[schema(value_type = String)]
    pub(crate) refresh_token: Secret,
    pub(crate) expires_in: u64,
}

/// Trade a refresh token for new tokens. The old refresh token dies; presenting a dead one
/// revokes the whole session.
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses((status = 200, body = TokenPair), (status = 400), (status = 401), (status = 429)))]
async fn refresh(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    JsonBody(req): JsonBody<RefreshRequest>,
) -> ApiResult<Json<TokenPair>> {
    let intent = state.writer.intend();
    state.rate.check(Action::Refresh, addr, None)?;
    let now = now_ms();
    let (refresh_token, new_hash) = new_opaque_token();
    let outcome = state
        .writer
        .rotate(
            intent,
            Rotation {
                old_hash: hash_token(req.refresh_token.expose()),
                new_hash,
                now,
                expires_at: refresh_expiry(&state, now),
            },
        )
        .await?;
    match outcome {
        Refreshed::Rotated {
            user_id,
            session_id,
        } => {
            let (access_token, expires_in) = access_token(&state, user_id, session_id, now);
            Ok(Json(TokenPair {
                access_token: access_token.into(),
                refresh_token: refresh_token.into(),
                expires_in,
            }))
        }
        Refreshed::Reused(session_id) => {
            tracing::warn!(%session_id, "a used refresh token was presented again: its session is revoked");
            state.hub.announce(Control::SessionRevoked(session_id));
            Err(ApiError::unauthenticated(
                "this refresh token was already used; the session is revoked: sign in again",
            ))
        }
        Refreshed::Invalid => Err(ApiError::unauthenticated(
            "the refresh token is invalid or expired: sign in again",
        )),
    }
}

/// Sign out: revoke this session.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401)))]
async fn logout(State(state): State<AppState>, auth: Auth) -> ApiResult<StatusCode> {
    crate::bearer::revoke_session(&state, auth.user_id, auth.session_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionWire {
    id: Uuid,
    device_name: Option<String>,
    created_at: String,
    last_used_at: String,
    /// Whether this is the session making the call.
    current: bool,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionList {
    sessions: Vec<SessionWire>,
}

/// The caller's live sessions.
#[utoipa::path(get, path = "/v1/sessions", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = SessionList), (status = 401)))]
async fn list_sessions(State(state): State<AppState>, auth: Auth) -> ApiResult<Json<SessionList>> {
    let sessions = state
        .store
        .sessions(auth.user_id)
        .await?
        .into_iter()
        .map(|s| SessionWire {
            current: s.id == auth.session_id,
            id: s.id,
            device_name: s.device_name,
            created_at: rfc3339(s.created_at),
            last_used_at: rfc3339(s.last_used_at),
        })
        .collect();
    Ok(Json(SessionList { sessions }))
}

/// Revoke one of the caller's sessions.
#[utoipa::path(delete, path = "/v1/sessions/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = Uuid, Path)), responses((status = 204), (status = 401), (status = 404)))]
async fn revoke_session(
    State(state): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id = validate::uuid("id", &id).map_err(|_| ApiError::not_found("no such session"))?;
    if !crate::bearer::revoke_session(&state, auth.user_id, id).await? {
        return Err(ApiError::not_found("no such session"));
    }
    Ok(StatusCode::NO_CONTENT)
}
