//! Accounts: registration (PROTOCOL §4). The key lifecycle calls of §5 live here too as they land.

use axum::http::StatusCode;
use axum::{extract::State, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientAddr, Fields, JsonBody};
use crate::limits::Action;
use crate::state::AppState;
use crate::store::{now_ms, NewAccount};
use crate::validate::{self, KdfWire, RecoveryWire};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(register))
}

/// A new account: everything the server keeps, all of it made on the client.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    email: String,
    kdf: KdfWire,
    /// `auth_key`, 32 bytes (PROTOCOL §2.1); the server stores only its SHA-256.
    auth_key: String,
    /// The account key wrapped under the password's wrap key, 72 bytes.
    wrapped_account_key: String,
    /// X25519 public key, 32 bytes, not of small order.
    public_key: String,
    /// The secret key wrapped under the account key, 72 bytes.
    wrapped_secret_key: String,
    recovery: Option<RecoveryWire>,
}

impl Fields for RegisterRequest {
    const FIELDS: &'static [&'static str] = &[
        "email",
        "kdf",
        "auth_key",
        "wrapped_account_key",
        "public_key",
        "wrapped_secret_key",
        "recovery",
    ];
    fn nested(field: &str) -> Option<&'static [&'static str]> {
        match field {
            "kdf" => Some(validate::KDF_FIELDS),
            "recovery" => Some(validate::RECOVERY_FIELDS),
            _ => None,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RegisterResponse {
    user_id: Uuid,
    key_version: i64,
}

/// Register an account.
#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", request_body = RegisterRequest,
    responses((status = 201, body = RegisterResponse), (status = 400), (status = 409), (status = 429)))]
async fn register(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<RegisterResponse>)> {
    let email = validate::email("email", &req.email)?;
    state.rate.check(Action::Register, addr, Some(&email))?;
    let kdf = req.kdf.check("kdf")?;
    let auth_key = validate::bytes("auth_key", &req.auth_key, 32)?;
    let wrapped_account_key = validate::wrapped("wrapped_account_key", &req.wrapped_account_key)?;
    let public_key = validate::public_key("public_key", &req.public_key)?;
    let wrapped_secret_key = validate::wrapped("wrapped_secret_key", &req.wrapped_secret_key)?;
    let recovery = req
        .recovery
        .as_ref()
        .map(|r| r.check("recovery"))
        .transpose()?;
    let account = NewAccount {
        id: Uuid::now_v7(),
        email,
        kdf,
        auth_hash: validate::sha256(&auth_key),
        wrapped_account_key,
        public_key,
        wrapped_secret_key,
        recovery,
        now: now_ms(),
    };
    if !state.store.create_account(&account).await? {
        return Err(ApiError::Conflict {
            message: "an account with this email exists: sign in, or recover it".into(),
            field: Some("email".into()),
        });
    }
    tracing::info!(user_id = %account.id, "account registered");
    Ok((
        StatusCode::CREATED,
        Json(RegisterResponse {
            user_id: account.id,
            key_version: 1,
        }),
    ))
}
