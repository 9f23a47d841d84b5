//! Looking up other accounts' public keys (PROTOCOL §4).

use axum::extract::{Path, RawQuery, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use sealpost_crypto::b64;

use crate::bearer::Auth;
use crate::error::{ApiError, ApiResult};
use crate::extract::query_pairs;
use crate::limits::Action;
use crate::state::AppState;
use crate::store::{PublicUser, UserRef};
use crate::validate;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(by_email))
        .routes(routes!(by_id))
        .routes(routes!(key_version))
        .routes(routes!(key_list))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserWire {
    user_id: Uuid,
    /// Absent for a deleted account.
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<String>,
    public_key: String,
    key_version: i64,
    /// Present (true) only for a deleted account, whose old keys are still served.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    deleted: bool,
}

impl From<PublicUser> for UserWire {
    fn from(u: PublicUser) -> Self {
        UserWire {
            user_id: u.user_id,
            email: u.email,
            public_key: b64::encode(&u.public_key),
            key_version: u.key_version,
            deleted: u.deleted,
        }
    }
}

fn no_such_user() -> ApiError {
    ApiError::not_found("no such user")
}

/// The query of a lookup by email.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EmailQuery {
    /// The address to look up (trimmed, ASCII letters lowercased).
    #[allow(dead_code)] // read through `query_pairs`, so that every fault gets §4's shape
    email: String,
}

/// Look a user up by email.
#[utoipa::path(get, path = "/v1/users", tag = "users", security(("bearer" = [])), params(EmailQuery),
    responses((status = 200, body = UserWire), (status = 400), (status = 401), (status = 404)))]
async fn by_email(
    State(state): State<AppState>,
    auth: Auth,
    RawQuery(query): RawQuery,
) -> ApiResult<Json<UserWire>> {
    state.rate.check_account(Action::Lookup, auth.user_id)?;
    let pairs = query_pairs(query.as_deref().unwrap_or(""), &["email"])?;
    let (_, email) = pairs
        .first()
        .ok_or_else(|| ApiError::invalid("email", "give ?email="))?;
    let email = validate::email("email", email)?;
    let user = state
        .store
        .public_user(UserRef::Email(&email), None)
        .await?
        .ok_or_else(no_such_user)?;
    Ok(Json(user.into()))
}

/// Look a user up by id: the newest key.
#[utoipa::path(get, path = "/v1/users/{user_id}", tag = "users", security(("bearer" = [])),
    params(("user_id" = Uuid, Path)), responses((status = 200, body = UserWire), (status = 401), (status = 404)))]
async fn by_id(
    State(state): State<AppState>,
    auth: Auth,
    Path(user_id): Path<String>,
) -> ApiResult<Json<UserWire>> {
    state.rate.check_account(Action::Lookup, auth.user_id)?;
    let id = validate::uuid("user_id", &user_id).map_err(|_| no_such_user())?;
    let user = state
        .store
        .public_user(UserRef::Id(id), None)
        .await?
        .ok_or_else(no_such_user)?;
    Ok(Json(user.into()))
}

/// A user's key at an older version, so that old messages can still be checked.
#[utoipa::path(get, path = "/v1/users/{user_id}/keys/{key_version}", tag = "users", security(("bearer" = [])),
    params(("user_id" = Uuid, Path), ("key_version" = i64, Path)),
    responses((status = 200, body = UserWire), (status = 401), (status = 404)))]
async fn key_version(
    State(state): State<AppState>,
    auth: Auth,
    Path((user_id, version)): Path<(String, String)>,
) -> ApiResult<Json<UserWire>> {
    state.rate.check_account(Action::Lookup, auth.user_id)?;
    let id = validate::uuid("user_id", &user_id).map_err(|_| no_such_user())?;
    let version: i64 = version
        .parse()
        .map_err(|_| ApiError::not_found("no such key version"))?;
    let user = state
        .store
        .public_user(UserRef::Id(id), Some(version))
        .await?
        .ok_or_else(|| ApiError::not_found("no such user or key version"))?;
    Ok(Json(user.into()))
}

/// One key version in a user's key list.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyVersionWire {
    key_version: i64,
    public_key: String,
}

/// Every key version of a user, ascending (PROTOCOL §4, §6).
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyListWire {
    user_id: Uuid,
    keys: Vec<KeyVersionWire>,
    /// Whether the account was deleted (its keys are still served, so that what it sent verifies).
    deleted: bool,
}

/// Every key version of a user, oldest first, so that a client pins the whole history at first
/// contact (PROTOCOL §6). A deleted account's keys too, with `deleted: true`.
#[utoipa::path(get, path = "/v1/users/{user_id}/keys", tag = "users", security(("bearer" = [])),
    params(("user_id" = Uuid, Path)),
    responses((status = 200, body = KeyListWire), (status = 401), (status = 404)))]
async fn key_list(
    State(state): State<AppState>,
    auth: Auth,
    Path(user_id): Path<String>,
) -> ApiResult<Json<KeyListWire>> {
    state.rate.check_account(Action::Lookup, auth.user_id)?;
    let id = validate::uuid("user_id", &user_id).map_err(|_| no_such_user())?;
    let list = state.store.key_list(id).await?.ok_or_else(no_such_user)?;
    Ok(Json(KeyListWire {
        user_id: id,
        keys: list
            .keys
            .into_iter()
            .map(|(key_version, public_key)| KeyVersionWire {
                key_version,
                public_key: b64::encode(&public_key),
            })
            .collect(),
        deleted: list.deleted,
    }))
}
