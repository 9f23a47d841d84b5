//! Sessions and their refresh tokens: open, check, note their use, rotate, revoke, list.

use rusqlite::{params, OptionalExtension};
use sealpost_proto::SecretBytes;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::{Keyring, Store};
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

/// A login, checked and (when its auth key matches) written by the group commit
/// (`super::batch`): the credentials are read in the transaction that opens the session.
#[derive(Debug)]
pub struct NewSession {
    pub email: String,
    /// SHA-256 of the auth_key presented: for the right key, the stored auth hash itself, so it
    /// prints redacted and is wiped on drop.
    pub presented: SecretBytes,
    pub device_name: Option<String>,
    /// SHA-256 of its first refresh token.
    pub refresh_hash: Vec<u8>,
    pub now: i64,
    pub expires_at: i64,
}

/// A login that matched: the session opened, and what the client unwraps.
#[derive(Debug)]
pub struct Opened {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub keyring: Keyring,
}

/// A refresh token to rotate, written by the group commit: `old_hash` dies, `new_hash` takes its
/// place.
#[derive(Debug)]
pub struct Rotation {
    pub old_hash: Vec<u8>,
    pub new_hash: Vec<u8>,
    pub now: i64,
    pub expires_at: i64,
}

/// A refresh token with its session, as a rotation that could not take the fast path reads it.
#[derive(sqlx::FromRow)]
struct TokenRow {
    session_id: Uuid,
    used_at: Option<i64>,
    user_id: Uuid,
    revoked_at: Option<i64>,
    expires_at: i64,
}

/// What a token that could not simply be rotated means.
enum Verdict {
    Invalid,
    /// Used before (or by a concurrent rotation that won): its whole session ends.
    Reused(Uuid),
    /// Unused and live: rotate it (SQLite's only path; on PostgreSQL the fast path did it).
    Rotate(TokenRow),
}

fn verdict(row: Option<TokenRow>, now: i64) -> Verdict {
    match row {
        None => Verdict::Invalid,
        Some(row) if row.revoked_at.is_some() => Verdict::Invalid,
        Some(row) if row.used_at.is_some() => Verdict::Reused(row.session_id),
        Some(row) if row.expires_at <= now => Verdict::Invalid,
        Some(row) => Verdict::Rotate(row),
    }
}

/// Logins of a batch on PostgreSQL in one statement: the sessions of live accounts (an account
/// deleted since its login read the credentials gets none) and their first refresh tokens.
/// Answers the ids of the sessions opened.
const OPEN_SESSIONS_PG: &str = "WITH s AS (INSERT INTO sessions (id, user_id, device_name, \
     created_at, last_used_at, expires_at) SELECT v.id, v.user_id, v.device_name, v.now, v.now, \
     v.expires_at FROM UNNEST($1::uuid[], $2::uuid[], $3::text[], $4::int8[], $5::int8[]) \
     AS v(id, user_id, device_name, now, expires_at) \
     JOIN users u ON u.id = v.user_id AND u.deleted_at IS NULL RETURNING id), \
     t AS (INSERT INTO refresh_tokens (hash, session_id) SELECT h.hash, h.id \
     FROM UNNEST($6::bytea[], $1::uuid[]) AS h(hash, id) WHERE h.id IN (SELECT id FROM s)) \
     SELECT id FROM s";
/// The same for one login on SQLite, run once per login inside the batch's transaction (SQLite
/// runs in-process: it is the commit, not the statements, that costs).
const OPEN_SESSION_SQLITE: &str = "INSERT INTO sessions (id, user_id, device_name, created_at, \
     last_used_at, expires_at) SELECT $1, $2, $3, $4, $4, $5 FROM users \
     WHERE id = $2 AND deleted_at IS NULL";
const INSERT_REFRESH_TOKEN: &str = "INSERT INTO refresh_tokens (hash, session_id) VALUES ($1, $2)";
/// A rotation on PostgreSQL in one statement when the token is unused and its session live (the
/// usual case): marks it used, stores its successor, extends the session. No row: the slow path
/// finds out why. The session's row is locked before the token's, the order in which account
/// deletion and password change take them, so that they cannot deadlock with a batch. Of two
/// rotations of one token, on any nodes, only one can match `used_at IS NULL` (the second waits
/// for the first's lock, then finds it used).
const ROTATE_PG: &str = "WITH live AS (SELECT s.id, s.user_id FROM refresh_tokens t \
     JOIN sessions s ON s.id = t.session_id WHERE t.hash = $1 AND t.used_at IS NULL \
     AND s.revoked_at IS NULL AND s.expires_at > $3 FOR UPDATE OF s), \
     used AS (UPDATE refresh_tokens t SET used_at = $3 FROM live \
     WHERE t.hash = $1 AND t.used_at IS NULL AND t.session_id = live.id \
     RETURNING t.session_id, live.user_id), \
     ins AS (INSERT INTO refresh_tokens (hash, session_id) SELECT $2, session_id FROM used), \
     ext AS (UPDATE sessions SET last_used_at = $3, expires_at = $4 \
     WHERE id IN (SELECT session_id FROM used)) \
     SELECT session_id, user_id FROM used";
const SELECT_LAST_USED: &str = "SELECT last_used_at FROM sessions \
     WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL";
const TOUCH_SESSION: &str = "UPDATE sessions SET last_used_at = $1 WHERE id = $2";
const SELECT_REFRESH_TOKEN: &str = "SELECT t.session_id, t.used_at, s.user_id, s.revoked_at, \
     s.expires_at FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.hash = $1";
const REVOKE_SESSION: &str =
    "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL";
/// SQLite's rotation marks the token used (under the write lock: no race).
const USE_REFRESH_TOKEN: &str =
    "UPDATE refresh_tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL";
const EXTEND_SESSION: &str = "UPDATE sessions SET last_used_at = $1, expires_at = $2 WHERE id = $3";
const REVOKE_USERS_SESSION: &str = "UPDATE sessions SET revoked_at = $1 \
     WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL";
const SELECT_SESSIONS: &str = "SELECT id, device_name, created_at, last_used_at FROM sessions \
     WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at, id";

impl Store {
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

/// A session a batch opens: its id, the account whose credentials matched, and the login.
pub(super) struct SessionToOpen<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub login: &'a NewSession,
}

/// Opens a batch's sessions on PostgreSQL (one statement); per login, whether its account was
/// still there to open one for.
pub(super) async fn open_sessions_pg(
    conn: &mut sqlx::PgConnection,
    opens: &[SessionToOpen<'_>],
) -> Result<Vec<bool>, sqlx::Error> {
    let ids: Vec<Uuid> = opens.iter().map(|o| o.id).collect();
    let users: Vec<Uuid> = opens.iter().map(|o| o.user_id).collect();
    let names: Vec<Option<&str>> = opens
        .iter()
        .map(|o| o.login.device_name.as_deref())
        .collect();
    let nows: Vec<i64> = opens.iter().map(|o| o.login.now).collect();
    let expiries: Vec<i64> = opens.iter().map(|o| o.login.expires_at).collect();
    let hashes: Vec<&[u8]> = opens
        .iter()
        .map(|o| o.login.refresh_hash.as_slice())
        .collect();
    let opened: Vec<Uuid> = sqlx::query_scalar(OPEN_SESSIONS_PG)
        .bind(&ids)
        .bind(&users)
        .bind(&names)
        .bind(&nows)
        .bind(&expiries)
        .bind(&hashes)
        .fetch_all(&mut *conn)
        .await?;
    Ok(ids.iter().map(|id| opened.contains(id)).collect())
}

/// Opens a batch's sessions on SQLite, one after the other in its transaction.
pub(super) fn open_sessions_sqlite(
    tx: &rusqlite::Transaction<'_>,
    opens: &[SessionToOpen<'_>],
) -> rusqlite::Result<Vec<bool>> {
    let mut opened = Vec::with_capacity(opens.len());
    if opens.is_empty() {
        return Ok(opened);
    }
    let mut open = super::direct::prepare(tx, OPEN_SESSION_SQLITE)?;
    let mut token = super::direct::prepare(tx, INSERT_REFRESH_TOKEN)?;
    for o in opens {
        let s = o.login;
        let n = open.execute(params![o.id, o.user_id, s.device_name, s.now, s.expires_at])?;
        if n == 1 {
            token.execute(params![s.refresh_hash, o.id])?;
        }
        opened.push(n == 1);
    }
    Ok(opened)
}

/// Rotates one refresh token on PostgreSQL: one statement when it is unused and live, else reads
/// why not; a reused token revokes its session (with a notification when `notify`).
pub(super) async fn rotate_pg(
    tx: &mut Transaction<'_, Postgres>,
    r: &Rotation,
    notify: bool,
) -> Result<Refreshed, sqlx::Error> {
    let rotated: Option<(Uuid, Uuid)> = sqlx::query_as(ROTATE_PG)
        .bind(&r.old_hash)
        .bind(&r.new_hash)
        .bind(r.now)
        .bind(r.expires_at)
        .fetch_optional(&mut **tx)
        .await?;
    if let Some((session_id, user_id)) = rotated {
        return Ok(Refreshed::Rotated {
            user_id,
            session_id,
        });
    }
    let row: Option<TokenRow> = sqlx::query_as(SELECT_REFRESH_TOKEN)
        .bind(&r.old_hash)
        .fetch_optional(&mut **tx)
        .await?;
    match verdict(row, r.now) {
        Verdict::Invalid => Ok(Refreshed::Invalid),
        // Unused and live, yet the fast path did not take it: only a race with a revocation or an
        // expiry between the two statements does that. Nothing is rotated.
        Verdict::Rotate(_) => Ok(Refreshed::Invalid),
        Verdict::Reused(session_id) => {
            sqlx::query(REVOKE_SESSION)
                .bind(r.now)
                .bind(session_id)
                .execute(&mut **tx)
                .await?;
            if notify {
                super::notify::queue(tx, &notification::session_revoked(session_id)).await?;
            }
            Ok(Refreshed::Reused(session_id))
        }
    }
}

/// Rotates one refresh token on SQLite, whose transaction holds the write lock: read, then write.
pub(super) fn rotate_sqlite(
    tx: &rusqlite::Transaction<'_>,
    r: &Rotation,
) -> rusqlite::Result<Refreshed> {
    let row = super::direct::prepare(tx, SELECT_REFRESH_TOKEN)?
        .query_row(params![r.old_hash], |row| {
            Ok(TokenRow {
                session_id: row.get(0)?,
                used_at: row.get(1)?,
                user_id: row.get(2)?,
                revoked_at: row.get(3)?,
                expires_at: row.get(4)?,
            })
        })
        .optional()?;
    match verdict(row, r.now) {
        Verdict::Invalid => Ok(Refreshed::Invalid),
        Verdict::Reused(session_id) => {
            super::direct::prepare(tx, REVOKE_SESSION)?.execute(params![r.now, session_id])?;
            Ok(Refreshed::Reused(session_id))
        }
        Verdict::Rotate(row) => {
            super::direct::prepare(tx, USE_REFRESH_TOKEN)?.execute(params![r.now, r.old_hash])?;
            super::direct::prepare(tx, INSERT_REFRESH_TOKEN)?
                .execute(params![r.new_hash, row.session_id])?;
            super::direct::prepare(tx, EXTEND_SESSION)?.execute(params![
                r.now,
                r.expires_at,
                row.session_id
            ])?;
            Ok(Refreshed::Rotated {
                user_id: row.user_id,
                session_id: row.session_id,
            })
        }
    }
}
