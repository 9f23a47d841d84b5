//! What `sealpost admin` does to a database directly, beside the running servers: open it
//! without creating or migrating it, count what it holds, revoke an account's sessions, and
//! purge what no longer serves anyone. Account deletion is [`Store::delete_account`], the same
//! code path as `POST /v1/account/delete`.
//!
//! Nothing here answers with more than counts and ids: no statement hands a ciphertext, a key,
//! a hash or a token back to the caller. Purges go in small batches, each its own short transaction, so that
//! a server's sends on the same database wait for one batch at most.

use std::time::Duration;

use anyhow::{bail, Context as _};
use sqlx::migrate::{Migrate as _, Migrator};
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::SqlitePoolOptions;
use uuid::Uuid;

use super::{Db, Store};
use crate::hub::notification;

/// Rows deleted per statement by [`Store::purge`].
const PURGE_BATCH: i64 = 500;
/// How long a dead session is kept before a purge deletes it: a refresh that read it just before
/// it died (or a node whose clock is behind this one's) must not find it gone half-way through
/// its transaction; and a dead session answers 401 whether it is there or not.
pub const SESSION_GRACE_MS: i64 = 10 * 60 * 1000;

/// What a database holds, in counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub accounts_live: i64,
    /// Deleted accounts: their user id and public keys stay (PROTOCOL §5).
    pub accounts_deleted: i64,
    /// Neither revoked nor expired.
    pub sessions_live: i64,
    pub mailbox_entries: i64,
    /// Ciphertext stored in every mailbox, in bytes.
    pub ciphertext_bytes: i64,
    /// The database's size on disk as the database reports it (SQLite: its main file without the
    /// `-wal`; PostgreSQL: `pg_database_size`).
    pub database_bytes: i64,
}

/// What [`Store::purge`] deleted, per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Purged {
    /// Sessions that expired or were revoked (over [`SESSION_GRACE_MS`] ago).
    pub sessions: u64,
    /// The refresh tokens of those sessions.
    pub refresh_tokens: u64,
    /// Recovery tokens that were used or expired.
    pub recovery_tokens: u64,
    /// What deleted accounts still had beyond their user id and public keys.
    pub deleted_accounts: Leftovers,
}

/// What a deleted account still held that PROTOCOL §5 says goes: normally nothing, since deletion
/// removes it in one transaction; a session opened by a login that raced the deletion, say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Leftovers {
    pub sessions: u64,
    pub refresh_tokens: u64,
    pub recovery_tokens: u64,
    pub mailbox_entries: u64,
    /// Key versions whose wrapped secret key was still stored (the public key stays).
    pub wrapped_secret_keys: u64,
    /// User rows that still held an email, a password hash or a wrapped key.
    pub credentials: u64,
}

/// The schema's ledger, and the old one a database made before sqlx had.
const HAS_LEDGER_SQLITE: &str =
    "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1";
const HAS_LEDGER_PG: &str =
    "SELECT COUNT(*) FROM pg_tables WHERE schemaname = current_schema() AND tablename = $1";

const COUNT_ACCOUNTS: &str =
    "SELECT COALESCE(SUM(CASE WHEN deleted_at IS NULL THEN 1 ELSE 0 END), 0), \
     COALESCE(SUM(CASE WHEN deleted_at IS NULL THEN 0 ELSE 1 END), 0) FROM users";
const COUNT_LIVE_SESSIONS: &str =
    "SELECT COUNT(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > $1";
const COUNT_ENTRIES_SQLITE: &str =
    "SELECT COUNT(*), COALESCE(SUM(length(ciphertext)), 0) FROM messages";
const COUNT_ENTRIES_PG: &str =
    "SELECT COUNT(*), COALESCE(SUM(octet_length(ciphertext)), 0)::BIGINT FROM messages";
const DATABASE_SIZE_SQLITE: &str =
    "SELECT page_count * page_size FROM pragma_page_count(), pragma_page_size()";
const DATABASE_SIZE_PG: &str = "SELECT pg_database_size(current_database())";

const SELECT_LIVE_USER: &str = "SELECT id FROM users WHERE email = $1 AND deleted_at IS NULL";
/// Every session not yet revoked, as a password change revokes them; answers whether each was
/// still live (not expired), so that the count is of sessions that could still be used.
const REVOKE_USER_SESSIONS: &str = "UPDATE sessions SET revoked_at = $1 \
     WHERE user_id = $2 AND revoked_at IS NULL RETURNING expires_at";

/// A session is purged once it was revoked or expired before `$1` (now less [`SESSION_GRACE_MS`]);
/// a deleted account's are handled as leftovers.
const PURGE_DEAD_REFRESH_TOKENS: &str = "DELETE FROM refresh_tokens WHERE hash IN \
     (SELECT t.hash FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
      WHERE s.revoked_at <= $1 OR s.expires_at <= $1 LIMIT $2)";
const PURGE_DEAD_SESSIONS: &str = "DELETE FROM sessions WHERE id IN \
     (SELECT id FROM sessions WHERE revoked_at <= $1 OR expires_at <= $1 LIMIT $2)";
const PURGE_RECOVERY_TOKENS: &str = "DELETE FROM recovery_tokens WHERE hash IN \
     (SELECT hash FROM recovery_tokens WHERE used_at IS NOT NULL OR expires_at <= $1 LIMIT $2)";

/// Deleted accounts that still hold something beyond their user id and public keys, in id order
/// after `$1` (each is visited once, even if a racing login gives it a session again).
const SELECT_LEFTOVER_ACCOUNTS: &str = "SELECT u.id FROM users u WHERE u.deleted_at IS NOT NULL AND (\
     u.email IS NOT NULL OR u.auth_hash IS NOT NULL OR u.wrapped_account_key IS NOT NULL \
     OR u.recovery_auth_hash IS NOT NULL OR u.recovery_wrapped IS NOT NULL \
     OR u.kdf_salt IS NOT NULL \
     OR EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = u.id) \
     OR EXISTS (SELECT 1 FROM recovery_tokens r WHERE r.user_id = u.id) \
     OR EXISTS (SELECT 1 FROM messages m WHERE m.mailbox = u.id) \
     OR EXISTS (SELECT 1 FROM user_keys k WHERE k.user_id = u.id AND k.wrapped_secret_key IS NOT NULL)) \
     AND u.id > $1 ORDER BY u.id LIMIT $2";
const LEFTOVER_REFRESH_TOKENS: &str = "DELETE FROM refresh_tokens \
     WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $1)";
const LEFTOVER_SESSIONS: &str = "DELETE FROM sessions WHERE user_id = $1";
const LEFTOVER_RECOVERY_TOKENS: &str = "DELETE FROM recovery_tokens WHERE user_id = $1";
const LEFTOVER_ENTRIES: &str = "DELETE FROM messages WHERE mailbox = $1";
const LEFTOVER_WRAPPED_KEYS: &str = "UPDATE user_keys SET wrapped_secret_key = NULL \
     WHERE user_id = $1 AND wrapped_secret_key IS NOT NULL";
/// Only rows that are deleted; `deleted_at` stays as it was.
const LEFTOVER_CREDENTIALS: &str = "UPDATE users SET email = NULL, kdf_salt = NULL, \
     kdf_opslimit = NULL, kdf_memlimit = NULL, auth_hash = NULL, wrapped_account_key = NULL, \
     recovery_auth_hash = NULL, recovery_wrapped = NULL \
     WHERE id = $1 AND deleted_at IS NOT NULL AND (email IS NOT NULL OR auth_hash IS NOT NULL \
     OR wrapped_account_key IS NOT NULL OR recovery_auth_hash IS NOT NULL \
     OR recovery_wrapped IS NOT NULL OR kdf_salt IS NOT NULL)";

impl Store {
    /// Opens an existing database for `sealpost admin`: never creates one, never migrates one,
    /// and refuses one whose schema is not exactly the one this build's migrations make (a newer
    /// one above all: this binary's statements could then mean something else).
    pub async fn open_existing(url: &str) -> anyhow::Result<Store> {
        let db = if url.starts_with("sqlite:") {
            let options = super::sqlite_options(url)?
                .create_if_missing(false)
                // A server writing to the same file holds the write lock for a batch at most.
                .busy_timeout(Duration::from_secs(30));
            let pool = SqlitePoolOptions::new()
                .max_connections(1)
                .connect_with(options)
                .await
                .with_context(|| {
                    format!("cannot open the SQLite database {url} (it must exist)")
                })?;
            Db::sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = PgPoolOptions::new()
                .max_connections(1)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .context("cannot connect to PostgreSQL")?;
            Db::Postgres(pool)
        } else {
            bail!("unsupported database URL: use sqlite://PATH or postgres://…");
        };
        // NOTIFY reaches nodes that LISTEN; nodes with a NATS hub find the change by their poll.
        let store = Store::over(db);
        store.check_schema().await?;
        Ok(store)
    }

    /// Compares the migrations the database has with this build's, without applying any.
    async fn check_schema(&self) -> anyhow::Result<()> {
        let (migrator, has_ledger): (&Migrator, _) = match &self.db {
            Db::Sqlite(..) => (&super::migrate::SQLITE, HAS_LEDGER_SQLITE),
            Db::Postgres(_) => (&super::migrate::POSTGRES, HAS_LEDGER_PG),
        };
        let applied = on!(self, pool => {
            let mut conn = pool.acquire().await?;
            let ledger: i64 = sqlx::query_scalar(has_ledger)
                .bind("_sqlx_migrations")
                .fetch_one(&mut *conn)
                .await?;
            let legacy: i64 = sqlx::query_scalar(has_ledger)
                .bind("schema_migrations")
                .fetch_one(&mut *conn)
                .await?;
            if legacy > 0 {
                bail!("the database was made by an older sealpost: start this version's `sealpost serve` on it once (it migrates at start-up), then run `sealpost admin` again");
            }
            if ledger == 0 {
                bail!("this is not a Sealpost database (it has no migrations): check --database");
            }
            if let Some(version) = conn.dirty_version().await? {
                bail!("the database's migration {version} failed half-way: fix it before anything else");
            }
            conn.list_applied_migrations().await?
        });
        let known: Vec<_> = migrator
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
            .collect();
        let newest_known = known.iter().map(|m| m.version).max().unwrap_or_default();
        for a in &applied {
            match known.iter().find(|m| m.version == a.version) {
                None => bail!(
                    "the database's schema is newer than this sealpost (it has migration {}, this \
                     binary knows up to {newest_known}): use the sealpost that runs the server",
                    a.version
                ),
                Some(m) if m.checksum != a.checksum => bail!(
                    "the database's migration {} differs from this sealpost's: use the sealpost \
                     that runs the server",
                    a.version
                ),
                Some(_) => {}
            }
        }
        if let Some(missing) = known
            .iter()
            .find(|m| !applied.iter().any(|a| a.version == m.version))
        {
            bail!(
                "the database's schema is older than this sealpost (it lacks migration {}): start \
                 this version's `sealpost serve` on it once (it migrates at start-up), or use the \
                 sealpost that runs the server",
                missing.version
            );
        }
        Ok(())
    }

    /// What the database holds, in counts; `now` decides which sessions are still live.
    pub async fn stats(&self, now: i64) -> Result<Stats, sqlx::Error> {
        let (count_entries, size) = match &self.db {
            Db::Sqlite(..) => (COUNT_ENTRIES_SQLITE, DATABASE_SIZE_SQLITE),
            Db::Postgres(_) => (COUNT_ENTRIES_PG, DATABASE_SIZE_PG),
        };
        on!(self, pool => {
            let (accounts_live, accounts_deleted): (i64, i64) =
                sqlx::query_as(COUNT_ACCOUNTS).fetch_one(pool).await?;
            let sessions_live: i64 =
                sqlx::query_scalar(COUNT_LIVE_SESSIONS).bind(now).fetch_one(pool).await?;
            let (mailbox_entries, ciphertext_bytes): (i64, i64) =
                sqlx::query_as(count_entries).fetch_one(pool).await?;
            let database_bytes: i64 = sqlx::query_scalar(size).fetch_one(pool).await?;
            Ok(Stats {
                accounts_live,
                accounts_deleted,
                sessions_live,
                mailbox_entries,
                ciphertext_bytes,
                database_bytes,
            })
        })
    }

    /// The id of the live account with this (normalised) email.
    pub async fn live_user_id(&self, email: &str) -> Result<Option<Uuid>, sqlx::Error> {
        on!(self, pool => {
            sqlx::query_scalar(SELECT_LIVE_USER).bind(email).fetch_optional(pool).await
        })
    }

    /// Revokes every session of a user, in one transaction with the notification that closes
    /// their streams on every node (PostgreSQL); answers how many of them were still live. On
    /// SQLite no running server hears of it: it finds the sessions revoked when it next reads them.
    pub async fn revoke_user_sessions(&self, user_id: Uuid, now: i64) -> Result<u64, sqlx::Error> {
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let expiries: Vec<i64> = sqlx::query_scalar(REVOKE_USER_SESSIONS)
                .bind(now)
                .bind(user_id)
                .fetch_all(&mut *tx)
                .await?;
            notify!(self, tx, notification::user_revoked(user_id, None));
            tx.commit().await?;
            Ok(expiries.iter().filter(|&&e| e > now).count() as u64)
        })
    }

    /// Deletes what no longer serves anyone: dead sessions (expired or revoked, more than
    /// [`SESSION_GRACE_MS`] before `now`) with their refresh tokens, used or expired recovery tokens, and what deleted accounts still hold beyond their
    /// user id and public keys (which stay, PROTOCOL §5). In batches of a few hundred rows.
    pub async fn purge(&self, now: i64) -> Result<Purged, sqlx::Error> {
        let dead_before = now.saturating_sub(SESSION_GRACE_MS);
        let mut purged = Purged {
            refresh_tokens: self
                .delete_in_batches(PURGE_DEAD_REFRESH_TOKENS, dead_before)
                .await?,
            ..Purged::default()
        };
        purged.sessions = self
            .delete_in_batches(PURGE_DEAD_SESSIONS, dead_before)
            .await?;
        purged.recovery_tokens = self.delete_in_batches(PURGE_RECOVERY_TOKENS, now).await?;
        let mut after = Uuid::nil();
        loop {
            let users: Vec<Uuid> = on!(self, pool => {
                sqlx::query_scalar(SELECT_LEFTOVER_ACCOUNTS)
                    .bind(after)
                    .bind(PURGE_BATCH)
                    .fetch_all(pool)
                    .await?
            });
            let Some(&last) = users.last() else {
                break;
            };
            for user in users {
                self.purge_deleted_account(user, &mut purged.deleted_accounts)
                    .await?;
            }
            after = last;
        }
        Ok(purged)
    }

    /// Runs `sql` (a `DELETE` of at most `$2` rows dead before `$1`) until it deletes nothing.
    async fn delete_in_batches(&self, sql: &str, now: i64) -> Result<u64, sqlx::Error> {
        let mut total = 0;
        loop {
            let n = on_write!(self, pool => {
                sqlx::query(sql)
                    .bind(now)
                    .bind(PURGE_BATCH)
                    .execute(pool)
                    .await?
                    .rows_affected()
            });
            total += n;
            if n == 0 {
                return Ok(total);
            }
        }
    }

    /// Removes, in one transaction, what a deleted account still holds beyond its user id and
    /// public keys, as deletion itself does; a session it still had is revoked on every node.
    async fn purge_deleted_account(
        &self,
        user_id: Uuid,
        left: &mut Leftovers,
    ) -> Result<(), sqlx::Error> {
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let run = |sql: &'static str| sqlx::query(sql).bind(user_id);
            let refresh_tokens = run(LEFTOVER_REFRESH_TOKENS).execute(&mut *tx).await?.rows_affected();
            let sessions = run(LEFTOVER_SESSIONS).execute(&mut *tx).await?.rows_affected();
            let recovery_tokens = run(LEFTOVER_RECOVERY_TOKENS).execute(&mut *tx).await?.rows_affected();
            let mailbox_entries = run(LEFTOVER_ENTRIES).execute(&mut *tx).await?.rows_affected();
            if mailbox_entries > 0 {
                // As every deletion from a mailbox does: its version moves, its count is zero.
                run(super::mailbox::EMPTIED).execute(&mut *tx).await?;
            }
            let wrapped_secret_keys = run(LEFTOVER_WRAPPED_KEYS).execute(&mut *tx).await?.rows_affected();
            let credentials = run(LEFTOVER_CREDENTIALS).execute(&mut *tx).await?.rows_affected();
            if sessions > 0 {
                notify!(self, tx, notification::user_revoked(user_id, None));
            }
            tx.commit().await?;
            left.refresh_tokens += refresh_tokens;
            left.sessions += sessions;
            left.recovery_tokens += recovery_tokens;
            left.mailbox_entries += mailbox_entries;
            left.wrapped_secret_keys += wrapped_secret_keys;
            left.credentials += credentials;
            Ok(())
        })
    }
}
