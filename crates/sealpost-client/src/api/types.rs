//! The wire types of PROTOCOL §4 and §5: binary values as plain bytes, credentials as [`Secret`]
//! and [`SecretBytes`] (both canonical base64url on the wire, §1, encoded once, at the JSON edge).
//! The secret types print `<redacted>`, so every type here derives `Debug`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use sealpost_crypto::KdfParams;
use sealpost_proto::{Secret, SecretBytes};

use super::b64;

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

impl Kdf {
    /// Reads the server's word as [`KdfParams`], refusing what PROTOCOL §2.1 refuses (another
    /// `alg`, a salt that is not 16 bytes, limits out of bounds) before anything is derived from
    /// it: [`KdfParams::from_wire`]'s checks, on the salt's bytes as they came off the wire.
    pub fn to_params(&self) -> Result<KdfParams, sealpost_crypto::Error> {
        use sealpost_crypto::Error::InvalidKdf;
        if self.alg != KdfParams::ALG {
            return Err(InvalidKdf("the algorithm is not argon2id13"));
        }
        let salt = <[u8; 16]>::try_from(self.salt.as_slice())
            .map_err(|_| InvalidKdf("the salt is not 16 bytes"))?;
        let params = KdfParams {
            salt,
            opslimit: self.opslimit,
            memlimit: self.memlimit,
        };
        params.validate()?;
        Ok(params)
    }
}

impl From<&KdfParams> for Kdf {
    fn from(params: &KdfParams) -> Self {
        Kdf {
            alg: KdfParams::ALG.to_owned(),
            salt: params.salt.to_vec(),
            opslimit: params.opslimit,
            memlimit: params.memlimit,
        }
    }
}

/// The recovery key's proof and its wrap of the account key (§2.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryWrap {
    /// `recovery_auth_key`: secret.
    pub auth_key: SecretBytes,
    /// Secret: the account key wrapped under a key derived from the password (or the recovery
    /// key), which a reader of logs could test guesses against offline.
    pub wrapped_account_key: SecretBytes,
}

/// `POST /v1/accounts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterRequest {
    pub email: String,
    pub kdf: Kdf,
    /// Secret.
    pub auth_key: SecretBytes,
    /// Secret: the account key wrapped under a key derived from the password (or the recovery
    /// key), which a reader of logs could test guesses against offline.
    pub wrapped_account_key: SecretBytes,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginRequest {
    pub email: String,
    /// Secret.
    pub auth_key: SecretBytes,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoginResponse {
    pub user_id: Uuid,
    pub session_id: Uuid,
    /// Secret.
    pub access_token: Secret,
    /// Secret.
    pub refresh_token: Secret,
    /// Seconds.
    pub expires_in: u64,
    /// Secret: the account key wrapped under a key derived from the password (or the recovery
    /// key), which a reader of logs could test guesses against offline.
    pub wrapped_account_key: SecretBytes,
    /// The newest version.
    pub keys: KeyInfo,
    /// The older versions, newest first.
    pub previous_keys: Vec<KeyInfo>,
}

/// The answer to `POST /v1/auth/refresh`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPair {
    /// Secret.
    pub access_token: Secret,
    /// Secret.
    pub refresh_token: Secret,
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

/// Every key version of a user (`GET /v1/users/{user_id}/keys`), ascending.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyList {
    pub user_id: Uuid,
    pub keys: Vec<PublicKeyVersion>,
    /// The account was deleted (its keys are still served, so that what it sent verifies).
    #[serde(default)]
    pub deleted: bool,
}

/// One public key version in a [`KeyList`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyVersion {
    pub key_version: i64,
    #[serde(with = "b64")]
    pub public_key: Vec<u8>,
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangePasswordRequest {
    /// Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_auth_key: Option<SecretBytes>,
    /// Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_token: Option<Secret>,
    pub kdf: Kdf,
    /// Secret.
    pub auth_key: SecretBytes,
    /// Secret: the account key wrapped under a key derived from the password (or the recovery
    /// key), which a reader of logs could test guesses against offline.
    pub wrapped_account_key: SecretBytes,
}

/// `PUT /v1/account/recovery`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetRecoveryRequest {
    /// Secret.
    pub current_auth_key: SecretBytes,
    pub recovery: RecoveryWrap,
}

/// The answer to `POST /v1/auth/recover`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoverResponse {
    /// Secret: single use, 10 minutes.
    pub recovery_token: Secret,
    /// The recovery wrap of the account key; secret like every wrap of it.
    pub wrapped_account_key: SecretBytes,
}

/// `POST /v1/keys/rotate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotateRequest {
    /// Secret.
    pub current_auth_key: SecretBytes,
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
