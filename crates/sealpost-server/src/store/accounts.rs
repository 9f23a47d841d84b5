//! Accounts: registration, what prelogin and login read, the §5 credential changes, deletion.

use std::collections::HashMap;

use sqlx::PgConnection;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::Store;
use crate::hub::notification;

/// What registration stores.
#[derive(Debug)]
pub struct NewAccount {
    pub id: Uuid,
    pub email: String,
    pub kdf: Kdf,
    pub auth_hash: Vec<u8>,
    pub wrapped_account_key: Vec<u8>,
    pub public_key: Vec<u8>,
    pub wrapped_secret_key: Vec<u8>,
    pub recovery: Option<(Vec<u8>, Vec<u8>)>,
    pub now: i64,
}

/// Argon2id parameters of an account (PROTOCOL §2.1).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Kdf {
    #[sqlx(rename = "kdf_salt")]
    pub salt: Vec<u8>,
    #[sqlx(rename = "kdf_opslimit")]
    pub opslimit: i64,
    #[sqlx(rename = "kdf_memlimit")]
    pub memlimit: i64,
}

/// What login needs of an account.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user_id: Uuid,
    pub auth_hash: Vec<u8>,
    pub keyring: Keyring,
}

/// What login hands back to the client to unwrap.
#[derive(Debug, Clone)]
pub struct Keyring {
    pub wrapped_account_key: Vec<u8>,
    /// Newest first.
    pub keys: Vec<super::KeyRecord>,
}

/// One row of the login query: the account's columns repeat on each of its key versions.
#[derive(sqlx::FromRow)]
struct CredentialRow {
    email: String,
    id: Uuid,
    auth_hash: Vec<u8>,
    wrapped_account_key: Option<Vec<u8>>,
    key_version: i64,
    public_key: Vec<u8>,
    wrapped_secret_key: Option<Vec<u8>>,
}

/// What recovery needs of an account that has a recovery key.
#[derive(Debug, sqlx::FromRow)]
pub struct RecoveryRecord {
    #[sqlx(rename = "id")]
    pub user_id: Uuid,
    #[sqlx(rename = "recovery_auth_hash")]
    pub auth_hash: Vec<u8>,
    #[sqlx(rename = "recovery_wrapped")]
    pub wrapped_account_key: Vec<u8>,
}

/// What entitles a password change.
#[derive(Debug, Clone, Copy)]
pub enum PasswordProof<'a> {
    /// A signed-in session that proved the current password; it stays signed in.
    Session { user_id: Uuid, keep: Uuid },
    /// The hash of a recovery token; every session is revoked.
    RecoveryToken(&'a [u8]),
}

const INSERT_USER: &str = "INSERT INTO users (id, email, kdf_salt, kdf_opslimit, kdf_memlimit, \
     auth_hash, wrapped_account_key, recovery_auth_hash, recovery_wrapped, key_version, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10) ON CONFLICT (email) DO NOTHING";
const SELECT_KDF: &str = "SELECT kdf_salt, kdf_opslimit, kdf_memlimit FROM users \
     WHERE email = $1 AND deleted_at IS NULL";
/// What login needs of a live account, in one query: the auth hash, the wrapped account key and
/// every key version, newest first. SQLite: one email; PostgreSQL: a batch's emails.
const SELECT_CREDENTIALS_SQLITE: &str = "SELECT u.email, u.id, u.auth_hash, \
     u.wrapped_account_key, k.key_version, k.public_key, k.wrapped_secret_key FROM users u \
     JOIN user_keys k ON k.user_id = u.id \
     WHERE u.email = $1 AND u.deleted_at IS NULL ORDER BY k.key_version DESC";
const SELECT_CREDENTIALS_PG: &str = "SELECT u.email, u.id, u.auth_hash, \
     u.wrapped_account_key, k.key_version, k.public_key, k.wrapped_secret_key FROM users u \
     JOIN user_keys k ON k.user_id = u.id \
     WHERE u.email = ANY($1) AND u.deleted_at IS NULL ORDER BY u.email, k.key_version DESC";
const SELECT_AUTH_HASH: &str = "SELECT auth_hash FROM users WHERE id = $1 AND deleted_at IS NULL";
const CONSUME_RECOVERY_TOKEN: &str = "UPDATE recovery_tokens SET used_at = $1 \
     WHERE hash = $2 AND used_at IS NULL AND expires_at > $1 RETURNING user_id";
const SWAP_PASSWORD: &str = "UPDATE users SET kdf_salt = $1, kdf_opslimit = $2, \
     kdf_memlimit = $3, auth_hash = $4, wrapped_account_key = $5 \
     WHERE id = $6 AND deleted_at IS NULL";
const REVOKE_ALL_SESSIONS: &str =
    "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL";
const REVOKE_OTHER_SESSIONS: &str = "UPDATE sessions SET revoked_at = $1 \
     WHERE user_id = $2 AND revoked_at IS NULL AND id <> $3";
const SET_RECOVERY: &str = "UPDATE users SET recovery_auth_hash = $1, recovery_wrapped = $2 \
     WHERE id = $3 AND deleted_at IS NULL";
const SELECT_RECOVERY: &str = "SELECT id, recovery_auth_hash, recovery_wrapped FROM users \
     WHERE email = $1 AND deleted_at IS NULL \
     AND recovery_auth_hash IS NOT NULL AND recovery_wrapped IS NOT NULL";
/// A credential change ends every recovery token of the account (PROTOCOL 1.1 §5).
const REVOKE_RECOVERY_TOKENS: &str = "DELETE FROM recovery_tokens WHERE user_id = $1";
const INSERT_RECOVERY_TOKEN: &str =
    "INSERT INTO recovery_tokens (hash, user_id, expires_at) VALUES ($1, $2, $3)";
const FORGET_USER: &str = "UPDATE users SET email = NULL, kdf_salt = NULL, kdf_opslimit = NULL, \
     kdf_memlimit = NULL, auth_hash = NULL, wrapped_account_key = NULL, \
     recovery_auth_hash = NULL, recovery_wrapped = NULL, deleted_at = $1 \
     WHERE id = $2 AND deleted_at IS NULL";
/// What deleting an account removes besides the user row's secrets, each bound to the user id.
const DELETE_ACCOUNT_DATA: [&str; 6] = [
    "UPDATE user_keys SET wrapped_secret_key = NULL WHERE user_id = $1",
    "DELETE FROM messages WHERE mailbox = $1",
    super::mailbox::EMPTIED,
    "DELETE FROM recovery_tokens WHERE user_id = $1",
    "DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $1)",
    "DELETE FROM sessions WHERE user_id = $1",
];

impl Store {
    /// Stores a new account with its key version 1; `Ok(false)` when the email is taken.
    pub async fn create_account(&self, a: &NewAccount) -> Result<bool, sqlx::Error> {
        let (rec_hash, rec_wrapped) = match &a.recovery {
            Some((h, w)) => (Some(h), Some(w)),
            None => (None, None),
        };
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let inserted = sqlx::query(INSERT_USER)
                .bind(a.id)
                .bind(&a.email)
                .bind(&a.kdf.salt)
                .bind(a.kdf.opslimit)
                .bind(a.kdf.memlimit)
                .bind(&a.auth_hash)
                .bind(&a.wrapped_account_key)
                .bind(rec_hash)
                .bind(rec_wrapped)
                .bind(a.now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if inserted == 0 {
                return Ok(false);
            }
            sqlx::query(super::keys::INSERT_KEY)
                .bind(a.id)
                .bind(1_i64)
                .bind(&a.public_key)
                .bind(&a.wrapped_secret_key)
                .bind(a.now)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// The stored KDF parameters of a live account.
    pub async fn kdf(&self, email: &str) -> Result<Option<Kdf>, sqlx::Error> {
        on!(self, pool => sqlx::query_as(SELECT_KDF).bind(email).fetch_optional(pool).await)
    }

    /// The auth hash of a live account, to check a `current_auth_key`.
    pub async fn auth_hash(&self, user_id: Uuid) -> Result<Option<Vec<u8>>, sqlx::Error> {
        let hash: Option<Option<Vec<u8>>> = on!(self, pool => {
            sqlx::query_scalar(SELECT_AUTH_HASH).bind(user_id).fetch_optional(pool).await?
        });
        Ok(hash.flatten())
    }

    /// Swaps kdf, auth hash and wrapped account key in one transaction, and revokes every
    /// session but the one kept (all of them after a recovery) and every recovery token. A recovery token (its hash) is
    /// consumed in the same transaction and names the user; `Ok(None)` when it is unknown, used
    /// or expired. Answers the user changed.
    pub async fn change_password(
        &self,
        proof: PasswordProof<'_>,
        kdf: &Kdf,
        auth_hash: &[u8],
        wrapped_account_key: &[u8],
        now: i64,
    ) -> Result<Option<Uuid>, sqlx::Error> {
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let (user_id, keep) = match proof {
                PasswordProof::Session { user_id, keep } => (user_id, Some(keep)),
                PasswordProof::RecoveryToken(hash) => {
                    let user: Option<Uuid> = sqlx::query_scalar(CONSUME_RECOVERY_TOKEN)
                        .bind(now)
                        .bind(hash)
                        .fetch_optional(&mut *tx)
                        .await?;
                    match user {
                        Some(u) => (u, None),
                        None => return Ok(None),
                    }
                }
            };
            let n = sqlx::query(SWAP_PASSWORD)
                .bind(&kdf.salt)
                .bind(kdf.opslimit)
                .bind(kdf.memlimit)
                .bind(auth_hash)
                .bind(wrapped_account_key)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Ok(None);
            }
            match keep {
                Some(keep) => {
                    sqlx::query(REVOKE_OTHER_SESSIONS)
                        .bind(now)
                        .bind(user_id)
                        .bind(keep)
                        .execute(&mut *tx)
                        .await?
                }
                None => sqlx::query(REVOKE_ALL_SESSIONS).bind(now).bind(user_id).execute(&mut *tx).await?,
            };
            sqlx::query(REVOKE_RECOVERY_TOKENS).bind(user_id).execute(&mut *tx).await?;
            notify!(self, tx, notification::user_revoked(user_id, keep));
            tx.commit().await?;
            Ok(Some(user_id))
        })
    }

    /// Replaces the recovery wrap (the old recovery key stops working) and ends every recovery
    /// token, in one transaction.
    pub async fn set_recovery(
        &self,
        user_id: Uuid,
        auth_hash: &[u8],
        wrapped: &[u8],
    ) -> Result<(), sqlx::Error> {
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(SET_RECOVERY)
                .bind(auth_hash)
                .bind(wrapped)
                .bind(user_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(REVOKE_RECOVERY_TOKENS).bind(user_id).execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(())
        })
    }

    /// What recovery needs of a live account that has a recovery key.
    pub async fn recovery(&self, email: &str) -> Result<Option<RecoveryRecord>, sqlx::Error> {
        on!(self, pool => sqlx::query_as(SELECT_RECOVERY).bind(email).fetch_optional(pool).await)
    }

    /// Stores a recovery token's hash.
    pub async fn create_recovery_token(
        &self,
        user_id: Uuid,
        hash: &[u8],
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        on_write!(self, pool => {
            sqlx::query(INSERT_RECOVERY_TOKEN)
                .bind(hash)
                .bind(user_id)
                .bind(expires_at)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Deletes an account in one transaction: the email, auth hash, wrapped keys, recovery wrap,
    /// sessions, recovery tokens and the whole mailbox go; the user id and its public keys stay,
    /// marked deleted, so that what it sent still verifies in other mailboxes.
    pub async fn delete_account(&self, user_id: Uuid, now: i64) -> Result<bool, sqlx::Error> {
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(FORGET_USER)
                .bind(now)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Ok(false);
            }
            for sql in DELETE_ACCOUNT_DATA {
                sqlx::query(sql).bind(user_id).execute(&mut *tx).await?;
            }
            notify!(self, tx, notification::user_revoked(user_id, None));
            tx.commit().await?;
            Ok(true)
        })
    }
}

/// Accounts' credentials from the rows of the login query (one account's rows together, newest
/// key first), by email. An account without a wrapped account key cannot sign in.
fn credentials_by_email(rows: Vec<CredentialRow>) -> HashMap<String, Credentials> {
    let mut found: HashMap<String, Credentials> = HashMap::new();
    let mut unusable = Vec::new();
    for row in rows {
        let key = super::KeyRecord {
            key_version: row.key_version,
            public_key: row.public_key,
            wrapped_secret_key: row.wrapped_secret_key,
        };
        if let Some(account) = found.get_mut(&row.email) {
            account.keyring.keys.push(key);
            continue;
        }
        let Some(wrapped_account_key) = row.wrapped_account_key else {
            unusable.push(row.email);
            continue;
        };
        found.insert(
            row.email,
            Credentials {
                user_id: row.id,
                auth_hash: row.auth_hash,
                keyring: Keyring {
                    wrapped_account_key,
                    keys: vec![key],
                },
            },
        );
    }
    for email in unusable {
        found.remove(&email);
    }
    found
}

/// The account whose stored auth hash `presented` (SHA-256 of an auth_key) matches, if any. The
/// same comparison, in the same time, whether or not the account exists.
pub(super) fn verify(presented: &[u8], found: Option<&Credentials>) -> Option<Credentials> {
    let stored = found.map_or(&[0u8; 32][..], |c| c.auth_hash.as_slice());
    let matches: bool = presented.ct_eq(stored).into();
    found.filter(|_| matches).cloned()
}

/// The credentials of the accounts behind `emails`, read in a batch's transaction on PostgreSQL.
pub(super) async fn credentials_pg(
    conn: &mut PgConnection,
    emails: &[&str],
) -> Result<HashMap<String, Credentials>, sqlx::Error> {
    let rows: Vec<CredentialRow> = sqlx::query_as(SELECT_CREDENTIALS_PG)
        .bind(emails)
        .fetch_all(&mut *conn)
        .await?;
    Ok(credentials_by_email(rows))
}

/// The credentials of the accounts behind `emails`, read in a batch's transaction on SQLite
/// (one statement per email: SQLite has no arrays, and runs in-process).
pub(super) fn credentials_sqlite(
    tx: &rusqlite::Transaction<'_>,
    emails: &[&str],
) -> rusqlite::Result<HashMap<String, Credentials>> {
    let mut read = super::direct::prepare(tx, SELECT_CREDENTIALS_SQLITE)?;
    let mut rows = Vec::new();
    for email in emails.iter().collect::<std::collections::BTreeSet<_>>() {
        for row in read.query_map([email], |row| {
            Ok(CredentialRow {
                email: row.get(0)?,
                id: row.get(1)?,
                auth_hash: row.get(2)?,
                wrapped_account_key: row.get(3)?,
                key_version: row.get(4)?,
                public_key: row.get(5)?,
                wrapped_secret_key: row.get(6)?,
            })
        })? {
            rows.push(row?);
        }
    }
    Ok(credentials_by_email(rows))
}
