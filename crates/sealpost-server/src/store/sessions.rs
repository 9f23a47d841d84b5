//! Sessions and their refresh tokens: open, check, note their use, rotate, revoke, list.

use uuid::Uuid;

use super::{Db, Store};
use crate::hub::notification;

/// A session as listed.
#[derive(Debug, sqlx::FromRow)]
pub struct SessionRow {
    pub id: Uuid,
    pub device_name: Option<String>,
    pub created_at: i64,
    pub last_used_at: i64,
}

/// What presenting a refresh token led to.
#[derive(Debug)]
pub enum Refreshed {
    Rotated {
        user_id: Uuid,
        session_id: Uuid,
    },
    /// The token was already used: the whole session (this one) is now revoked.
    Reused(Uuid),
    /// Unknown, expired, or its session is revoked.
    Invalid,
}

/// A refresh token with its session, as `refresh` reads it.
#[derive(sqlx::FromRow)]
struct TokenRow {
    session_id: Uuid,
    used_at: Option<i64>,
    user_id: Uuid,
    revoked_at: Option<i64>,
    expires_at: i64,
}

/// The session's columns, written the same on both backends.
macro_rules! session_insert {
    () => {
        "INSERT INTO sessions (id, user_id, device_name, created_at, last_used_at, expires_at) \
         VALUES ($1, $2, $3, $4, $4, $5)"
    };
}

const INSERT_SESSION: &str = session_insert!();
/// On PostgreSQL the session and its first refresh token in one statement: one round trip, and
/// an implicit transaction.
const INSERT_SESSION_WITH_TOKEN_PG: &str = concat!(
    "WITH s AS (",
    session_insert!(),
    ") INSERT INTO refresh_tokens (hash, session_id) VALUES ($6, $1)"
);
const INSERT_REFRESH_TOKEN: &str = "INSERT INTO refresh_tokens (hash, session_id) VALUES ($1, $2)";
const SELECT_LAST_USED: &str = "SELECT last_used_at FROM sessions \
     WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL";
const TOUCH_SESSION: &str = "UPDATE sessions SET last_used_at = $1 WHERE id = $2";
const SELECT_REFRESH_TOKEN: &str = "SELECT t.session_id, t.used_at, s.user_id, s.revoked_at, \
     s.expires_at FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.hash = $1";
const REVOKE_SESSION: &str =
    "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL";
/// Only one of two concurrent refreshes with the same token can win this update.
const USE_REFRESH_TOKEN: &str =
    "UPDATE refresh_tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL";
const EXTEND_SESSION: &str = "UPDATE sessions SET last_used_at = $1, expires_at = $2 WHERE id = $3";
const REVOKE_USERS_SESSION: &str = "UPDATE sessions SET revoked_at = $1 \
     WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL";
const SELECT_SESSIONS: &str = "SELECT id, device_name, created_at, last_used_at FROM sessions \
     WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at, id";

impl Store {
    /// Opens a session with its first refresh token.
    pub async fn create_session(
        &self,
        user_id: Uuid,
        device_name: Option<&str>,
        refresh_hash: &[u8],
        now: i64,
        expires_at: i64,
    ) -> Result<Uuid, sqlx::Error> {
        let id = Uuid::now_v7();
        match &self.db {
            Db::Postgres(pool) => {
                sqlx::query(INSERT_SESSION_WITH_TOKEN_PG)
                    .bind(id)
                    .bind(user_id)
                    .bind(device_name)
                    .bind(now)
                    .bind(expires_at)
                    .bind(refresh_hash)
                    .execute(pool)
                    .await?;
            }
            Db::Sqlite(pool, _) => {
                let _writing = self.write_lock().await;
                let mut tx = pool.begin().await?;
                sqlx::query(INSERT_SESSION)
                    .bind(id)
                    .bind(user_id)
                    .bind(device_name)
                    .bind(now)
                    .bind(expires_at)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(INSERT_REFRESH_TOKEN)
                    .bind(refresh_hash)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
        }
        Ok(id)
    }

    /// When a live session of this user was last noted in use; `None` if it is not live.
    pub async fn session_last_used(
        &self,
        session_id: Uuid,
        user_id: Uuid,
    ) -> Result<Option<i64>, sqlx::Error> {
        on!(self, pool => {
            sqlx::query_scalar(SELECT_LAST_USED)
                .bind(session_id)
                .bind(user_id)
                .fetch_optional(pool)
                .await
        })
    }

    /// Notes that a session was used at `now`.
    pub async fn touch_session(&self, session_id: Uuid, now: i64) -> Result<(), sqlx::Error> {
        on_write!(self, pool => {
            sqlx::query(TOUCH_SESSION).bind(now).bind(session_id).execute(pool).await?;
            Ok(())
        })
    }

    /// Rotates a refresh token: the presented one dies, `new_hash` takes its place. A token that
    /// was already used revokes its whole session.
    pub async fn refresh(
        &self,
        old_hash: &[u8],
        new_hash: &[u8],
        now: i64,
        expires_at: i64,
    ) -> Result<Refreshed, sqlx::Error> {
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let row: Option<TokenRow> = sqlx::query_as(SELECT_REFRESH_TOKEN)
                .bind(old_hash)
                .fetch_optional(&mut *tx)
                .await?;
            let Some(row) = row else { return Ok(Refreshed::Invalid) };
            if row.revoked_at.is_some() {
                return Ok(Refreshed::Invalid);
            }
            if row.expires_at <= now && row.used_at.is_none() {
                return Ok(Refreshed::Invalid);
            }
            // A token used before, or by a concurrent refresh that won the update below (on
            // PostgreSQL both can read it unused), is reuse: the whole session ends.
            let won = row.used_at.is_none()
                && sqlx::query(USE_REFRESH_TOKEN)
                    .bind(now)
                    .bind(old_hash)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                    == 1;
            if !won {
                sqlx::query(REVOKE_SESSION)
                    .bind(now)
                    .bind(row.session_id)
                    .execute(&mut *tx)
                    .await?;
                notify!(self, tx, notification::session_revoked(row.session_id));
                tx.commit().await?;
                return Ok(Refreshed::Reused(row.session_id));
            }
            sqlx::query(INSERT_REFRESH_TOKEN)
                .bind(new_hash)
                .bind(row.session_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query(EXTEND_SESSION)
                .bind(now)
                .bind(expires_at)
                .bind(row.session_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Refreshed::Rotated { user_id: row.user_id, session_id: row.session_id })
        })
    }

    /// Revokes one live session of a user; `false` if there is none such.
    pub async fn revoke_session(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(REVOKE_USERS_SESSION)
                .bind(now)
                .bind(session_id)
                .bind(user_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            notify!(self, tx, notification::session_revoked(session_id));
            tx.commit().await?;
            Ok(n > 0)
        })
    }

    /// The live sessions of a user, oldest first.
    pub async fn sessions(&self, user_id: Uuid) -> Result<Vec<SessionRow>, sqlx::Error> {
        on!(self, pool => sqlx::query_as(SELECT_SESSIONS).bind(user_id).fetch_all(pool).await)
    }
}
