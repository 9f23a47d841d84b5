//! Accounts and their key lifecycle: registration (PROTOCOL §4); password change, recovery,
//! key rotation and deletion (§5). None of these ever gives the server a usable key: it stores
//! hashes of proofs and keys wrapped on the client.

use axum::http::StatusCode;
use axum::{extract::State, Json};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};
use uuid::Uuid;

use sealpost_proto::Secret;

use crate::bearer::{Auth, MaybeAuth};
use crate::clock::now_ms;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ClientAddr, Fields, JsonBody};
use crate::hub::Control;
use crate::limits::Action;
use crate::state::AppState;
use crate::store::{NewAccount, PasswordProof};
use crate::tokens::{hash_token, new_opaque_token};
use crate::validate::{self, KdfWire, RecoveryWire};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(change_password))
        .routes(routes!(set_recovery))
        .routes(routes!(recover))
        .routes(routes!(rotate_keys))
        .routes(routes!(delete_account))
}

/// A new account: everything the server keeps, all of it made on the client.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    email: String,
    kdf: KdfWire,
    /// `auth_key`, 32 bytes (PROTOCOL §2.1); the server stores only its SHA-256.
    #[schema(value_type = String)]
    auth_key: Secret,
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
    let auth_key = validate::bytes("auth_key", req.auth_key.expose(), 32)?;
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

/// How long a recovery token lives.
const RECOVERY_TOKEN_TTL_MS: i64 = 10 * 60 * 1000;

/// Checks `current_auth_key`, the proof of the password that every §5 call but `recover` needs:
/// 400 if malformed, 403 if wrong (never 401: the token is fine), 429 after too many misses.
async fn check_password(
    state: &AppState,
    addr: std::net::IpAddr,
    user_id: Uuid,
    current_auth_key: &str,
) -> ApiResult<()> {
    let key = validate::bytes("current_auth_key", current_auth_key, 32)?;
    let account = user_id.to_string();
    state.rate.check_failures(&account, addr)?;
    let stored = state
        .store
        .auth_hash(user_id)
        .await?
        .ok_or_else(|| ApiError::unauthenticated("this account no longer exists"))?;
    if !bool::from(subtle::ConstantTimeEq::ct_eq(
        validate::sha256(&key).as_slice(),
        stored.as_slice(),
    )) {
        state.rate.failed(&account, addr);
        return Err(ApiError::Forbidden(
            "current_auth_key is wrong: derive it from the current password (PROTOCOL §2.1)".into(),
        ));
    }
    Ok(())
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// Proof of the current password (with a bearer token).
    #[schema(value_type = Option<String>)]
    current_auth_key: Option<Secret>,
    /// From `POST /v1/auth/recover` (no bearer token needed).
    #[schema(value_type = Option<String>)]
    recovery_token: Option<Secret>,
    /// The new password's parameters, with a fresh salt.
    kdf: KdfWire,
    /// The new password's `auth_key`.
    #[schema(value_type = String)]
    auth_key: Secret,
    /// The same account key, wrapped under the new password's wrap key.
    wrapped_account_key: String,
}

impl Fields for ChangePasswordRequest {
    const FIELDS: &'static [&'static str] = &[
        "current_auth_key",
        "recovery_token",
        "kdf",
        "auth_key",
        "wrapped_account_key",
    ];
    fn nested(field: &str) -> Option<&'static [&'static str]> {
        (field == "kdf").then_some(validate::KDF_FIELDS)
    }
}

/// Change the password: one atomic swap of kdf, auth hash and wrapped account key. No key pair
/// changes. Every other session is revoked (all of them, after a recovery).
#[utoipa::path(put, path = "/v1/account/password", tag = "accounts", request_body = ChangePasswordRequest,
    security(("bearer" = []), ()),
    responses((status = 204), (status = 400), (status = 401), (status = 403)))]
async fn change_password(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    MaybeAuth(auth): MaybeAuth,
    JsonBody(req): JsonBody<ChangePasswordRequest>,
) -> ApiResult<StatusCode> {
    let kdf = req.kdf.check("kdf")?;
    let auth_key = validate::bytes("auth_key", req.auth_key.expose(), 32)?;
    let wrapped = validate::wrapped("wrapped_account_key", &req.wrapped_account_key)?;
    let auth_hash = validate::sha256(&auth_key);
    let now = now_ms();
    match (&req.current_auth_key, &req.recovery_token, auth) {
        (Some(current), None, Some(auth)) => {
            check_password(&state, addr, auth.user_id, current.expose()).await?;
            let proof = PasswordProof::Session {
                user_id: auth.user_id,
                keep: auth.session_id,
            };
            state
                .store
                .change_password(proof, &kdf, &auth_hash, &wrapped, now)
                .await?
                .ok_or_else(|| ApiError::unauthenticated("this account no longer exists"))?;
            state.hub.announce(Control::UserRevoked {
                user: auth.user_id,
                except: Some(auth.session_id),
            });
            tracing::info!(user_id = %auth.user_id, "password changed");
        }
        (Some(_), None, None) => {
            return Err(ApiError::unauthenticated(
                "a password change with current_auth_key needs the bearer token of a session",
            ))
        }
        (None, Some(token), _) => {
            let proof = PasswordProof::RecoveryToken(&hash_token(token.expose()));
            let user_id = state
                .store
                .change_password(proof, &kdf, &auth_hash, &wrapped, now)
                .await?
                .ok_or_else(|| {
                    ApiError::unauthenticated("the recovery token is invalid, used or expired")
                })?;
            state.hub.announce(Control::UserRevoked {
                user: user_id,
                except: None,
            });
            tracing::info!(%user_id, "password reset with the recovery key");
        }
        _ => {
            return Err(ApiError::invalid(
                "current_auth_key",
                "give exactly one of current_auth_key (with a bearer token) and recovery_token",
            ))
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRecoveryRequest {
    #[schema(value_type = String)]
    current_auth_key: Secret,
    recovery: RecoveryWire,
}

impl Fields for SetRecoveryRequest {
    const FIELDS: &'static [&'static str] = &["current_auth_key", "recovery"];
    fn nested(field: &str) -> Option<&'static [&'static str]> {
        (field == "recovery").then_some(validate::RECOVERY_FIELDS)
    }
}

/// Replace the recovery wrap: the old recovery key stops working.
#[utoipa::path(put, path = "/v1/account/recovery", tag = "accounts", request_body = SetRecoveryRequest,
    security(("bearer" = [])), responses((status = 204), (status = 400), (status = 401), (status = 403)))]
async fn set_recovery(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    auth: Auth,
    JsonBody(req): JsonBody<SetRecoveryRequest>,
) -> ApiResult<StatusCode> {
    validate::bytes("current_auth_key", req.current_auth_key.expose(), 32)?;
    let (hash, wrapped) = req.recovery.check("recovery")?;
    check_password(&state, addr, auth.user_id, req.current_auth_key.expose()).await?;
    state
        .store
        .set_recovery(auth.user_id, &hash, &wrapped)
        .await?;
    tracing::info!(user_id = %auth.user_id, "recovery key replaced");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RecoverRequest {
    email: String,
    /// `recovery_auth_key` (PROTOCOL §2.3), 32 bytes.
    #[schema(value_type = String)]
    recovery_auth_key: Secret,
}

impl Fields for RecoverRequest {
    const FIELDS: &'static [&'static str] = &["email", "recovery_auth_key"];
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RecoverResponse {
    /// Single use, 10 minutes: for `PUT /v1/account/password`.
    #[schema(value_type = String)]
    pub(crate) recovery_token: Secret,
    /// The account key wrapped under the recovery key.
    pub(crate) wrapped_account_key: String,
}

/// Prove possession of the recovery key: get the recovery wrap and a token to set a new password.
#[utoipa::path(post, path = "/v1/auth/recover", tag = "auth", request_body = RecoverRequest,
    responses((status = 200, body = RecoverResponse), (status = 400), (status = 401), (status = 429)))]
async fn recover(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    JsonBody(req): JsonBody<RecoverRequest>,
) -> ApiResult<Json<RecoverResponse>> {
    let email = validate::email("email", &req.email)?;
    let key = validate::bytes("recovery_auth_key", req.recovery_auth_key.expose(), 32)?;
    state.rate.check(Action::Recover, addr, None)?;
    state.rate.check_failures(&email, addr)?;
    let presented = validate::sha256(&key);
    let found = state.store.recovery(&email).await?;
    // The same comparison, in the same time, whether or not the account (or its recovery) exists.
    let (user_id, stored, wrapped) = match &found {
        Some(r) => (
            Some(r.user_id),
            r.auth_hash.as_slice(),
            r.wrapped_account_key.as_slice(),
        ),
        None => (None, &[0u8; 32][..], &[][..]),
    };
    let matches = bool::from(subtle::ConstantTimeEq::ct_eq(presented.as_slice(), stored));
    let Some(user_id) = user_id.filter(|_| matches) else {
        state.rate.failed(&email, addr);
        return Err(ApiError::unauthenticated("wrong email or recovery key"));
    };
    let (recovery_token, hash) = new_opaque_token();
    state
        .store
        .create_recovery_token(user_id, &hash, now_ms() + RECOVERY_TOKEN_TTL_MS)
        .await?;
    tracing::info!(%user_id, "recovery key proven");
    Ok(Json(RecoverResponse {
        recovery_token: recovery_token.into(),
        wrapped_account_key: sealpost_crypto::b64::encode(wrapped),
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateRequest {
    #[schema(value_type = String)]
    current_auth_key: Secret,
    /// The new X25519 public key.
    public_key: String,
    /// The newest version + 1.
    #[serde(deserialize_with = "validate::integer")]
    key_version: i64,
    /// The new secret key, wrapped under the account key.
    wrapped_secret_key: String,
}

impl Fields for RotateRequest {
    const FIELDS: &'static [&'static str] = &[
        "current_auth_key",
        "public_key",
        "key_version",
        "wrapped_secret_key",
    ];
}

/// Publish a new key pair as the next key version. Every older version stays stored and served.
#[utoipa::path(post, path = "/v1/keys/rotate", tag = "accounts", request_body = RotateRequest,
    security(("bearer" = [])),
    responses((status = 204), (status = 400), (status = 401), (status = 403), (status = 409)))]
async fn rotate_keys(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    auth: Auth,
    JsonBody(req): JsonBody<RotateRequest>,
) -> ApiResult<StatusCode> {
    validate::bytes("current_auth_key", req.current_auth_key.expose(), 32)?;
    let public_key = validate::public_key("public_key", &req.public_key)?;
    let version = validate::key_version("key_version", req.key_version)?;
    let wrapped = validate::wrapped("wrapped_secret_key", &req.wrapped_secret_key)?;
    check_password(&state, addr, auth.user_id, req.current_auth_key.expose()).await?;
    if !state
        .store
        .rotate_key(auth.user_id, version, &public_key, &wrapped, now_ms())
        .await?
    {
        return Err(ApiError::Conflict {
            message: "key_version must be the newest version + 1: log in again to see the newest"
                .into(),
            field: Some("key_version".into()),
        });
    }
    tracing::info!(user_id = %auth.user_id, key_version = version, "key rotated");
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    #[schema(value_type = String)]
    current_auth_key: Secret,
}

impl Fields for DeleteRequest {
    const FIELDS: &'static [&'static str] = &["current_auth_key"];
}

/// Delete the account: email, auth hash, wrapped keys, recovery wrap, sessions and mailbox go, in
/// one transaction; the user id and its public keys stay, marked deleted, so that messages it
/// sent still verify in their recipients' mailboxes.
#[utoipa::path(post, path = "/v1/account/delete", tag = "accounts", request_body = DeleteRequest,
    security(("bearer" = [])), responses((status = 204), (status = 400), (status = 401), (status = 403)))]
async fn delete_account(
    State(state): State<AppState>,
    ClientAddr(addr): ClientAddr,
    auth: Auth,
    JsonBody(req): JsonBody<DeleteRequest>,
) -> ApiResult<StatusCode> {
    check_password(&state, addr, auth.user_id, req.current_auth_key.expose()).await?;
    if !state.store.delete_account(auth.user_id, now_ms()).await? {
        return Err(ApiError::unauthenticated("this account no longer exists"));
    }
    state.hub.announce(Control::UserRevoked {
        user: auth.user_id,
        except: None,
    });
    tracing::info!(user_id = %auth.user_id, "account deleted");
    Ok(StatusCode::NO_CONTENT)
}
