//! Bearer authentication: who the caller is (`Auth`, `MaybeAuth`), whether a session is live, and
//! revoking one. It reads the state; the state knows nothing of it.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use uuid::Uuid;

use crate::clock::now_ms;
use crate::error::ApiError;
use crate::hub::Control;
use crate::state::AppState;

/// A session's last use is written at most this often (so most requests only read).
const TOUCH_EVERY_MS: i64 = 60_000;

/// The caller of an authenticated call: a valid access token of a live session.
#[derive(Debug, Clone, Copy)]
pub struct Auth {
    pub user_id: Uuid,
    pub session_id: Uuid,
    /// When the access token stops being accepted (its `exp` and the leeway), in Unix seconds.
    pub valid_until: i64,
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::unauthenticated("sign in: send Authorization: Bearer <access_token>")
            })?;
        authenticate(state, token.trim()).await
    }
}

/// The caller, when an `Authorization` header is sent (then it must be valid: 401 otherwise).
#[derive(Debug, Clone, Copy)]
pub struct MaybeAuth(pub Option<Auth>);

impl FromRequestParts<AppState> for MaybeAuth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if parts
            .headers
            .contains_key(axum::http::header::AUTHORIZATION)
        {
            Ok(MaybeAuth(Some(
                Auth::from_request_parts(parts, state).await?,
            )))
        } else {
            Ok(MaybeAuth(None))
        }
    }
}

/// Checks an access token and that its session is live.
pub async fn authenticate(state: &AppState, token: &str) -> Result<Auth, ApiError> {
    let claims = state.jwt.verify(token, now_ms() / 1000).ok_or_else(|| {
        ApiError::unauthenticated("the access token is invalid or expired: refresh it or sign in")
    })?;
    if !state.hub.session_cached(claims.sid, claims.sub) {
        let generation = state.hub.session_generation();
        if !session_live(state, claims.sid, claims.sub).await? {
            return Err(ApiError::unauthenticated(
                "this session has ended: sign in again",
            ));
        }
        state.hub.cache_session(claims.sid, claims.sub, generation);
    }
    Ok(Auth {
        user_id: claims.sub,
        session_id: claims.sid,
        valid_until: claims.valid_until(),
    })
}

/// Whether a session is live for this user, asking the store; notes its use at most once a
/// minute.
pub async fn session_live(
    state: &AppState,
    session_id: Uuid,
    user_id: Uuid,
) -> Result<bool, sqlx::Error> {
    let now = now_ms();
    match state.store.session_last_used(session_id, user_id).await? {
        None => Ok(false),
        Some(last) => {
            if now - last > TOUCH_EVERY_MS {
                state.store.touch_session(session_id, now).await?;
            }
            Ok(true)
        }
    }
}

/// Revokes one session of a user, and closes its streams on every node; `false` if the user has
/// no such live session.
pub async fn revoke_session(
    state: &AppState,
    user_id: Uuid,
    session_id: Uuid,
) -> Result<bool, ApiError> {
    let revoked = state
        .store
        .revoke_session(user_id, session_id, now_ms())
        .await?;
    if revoked {
        state.hub.announce(Control::SessionRevoked(session_id));
    }
    Ok(revoked)
}
