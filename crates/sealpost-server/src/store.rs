//! The store: the only module that knows SQL. One interface, two real backends (embedded SQLite,
//! PostgreSQL). Both accept the same statements almost everywhere (`$1` placeholders, `RETURNING`,
//! `ON CONFLICT`), so each method is written once and compiled for each pool by [`on!`]; where
//! the dialects differ, the two statements stand side by side.
//!
//! Times are stored as Unix milliseconds. Every method that writes commits before it returns, so
//! a 2xx built on its answer is durable.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use sqlx::postgres::{PgPoolOptions, Postgres};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Row as _, Sqlite};
use uuid::Uuid;

use crate::hub::notification;
use crate::pages::MailboxVersion;

/// Runs `$body` with `$pool` bound to the SQLite or the PostgreSQL pool: the same code, compiled
/// for each backend.
macro_rules! on {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            Store::Sqlite($pool, _) => $body,
            Store::Postgres($pool) => $body,
        }
    };
}

/// `on!` for a method that writes: on SQLite it first takes the node's write lock (see
/// [`WriteLock`]), held until the method returns.
macro_rules! on_write {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            Store::Sqlite($pool, _) => {
                let _writing = $store.write_lock().await;
                $body
            }
            Store::Postgres($pool) => $body,
        }
    };
}

/// On PostgreSQL, queues a notification for every node (sent at commit, with the transaction, or
/// not at all); on SQLite there is one node, whose hub the caller wakes itself.
macro_rules! notify {
    ($store:expr, $tx:expr, $payload:expr) => {
        if let Store::Postgres(_) = $store {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(crate::hub::CHANNEL)
                .bind($payload)
                .execute(&mut *$tx)
                .await?;
        }
    };
}

/// Numbered migrations, per backend, applied in order at start-up.
const SQLITE_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_init.sql")),
    (
        2,
        include_str!("../migrations/sqlite/0002_recovery_tokens.sql"),
    ),
    (3, include_str!("../migrations/sqlite/0003_mailbox_rev.sql")),
];
const POSTGRES_MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_init.sql")),
    (
        2,
        include_str!("../migrations/postgres/0002_recovery_tokens.sql"),
    ),
    (
        3,
        include_str!("../migrations/postgres/0003_mailbox_rev.sql"),
    ),
    (
        4,
        include_str!("../migrations/postgres/0004_messages_mailbox_fk.sql"),
    ),
];

/// The database behind one node.
#[derive(Debug, Clone)]
pub enum Store {
    Sqlite(Pool<Sqlite>, WriteLock),
    Postgres(Pool<Postgres>),
}

/// SQLite has one write lock per database. A writer that finds it taken sleeps in SQLite's busy
/// handler, in steps of 1 to 100 ms, and under load that was most of login's p99 (190 ms). So every
/// write on SQLite first takes this lock, and writers queue in order, awake, in the server.
#[derive(Debug, Clone, Default)]
pub struct WriteLock(Arc<tokio::sync::Mutex<()>>);

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kdf {
    pub salt: Vec<u8>,
    pub opslimit: i64,
    pub memlimit: i64,
}

/// What login needs of an account.
#[derive(Debug)]
pub struct Credentials {
    pub user_id: Uuid,
    pub auth_hash: Vec<u8>,
    pub keyring: Keyring,
}

/// One key version of an account.
#[derive(Debug, Clone)]
pub struct KeyRecord {
    pub key_version: i64,
    pub public_key: Vec<u8>,
    pub wrapped_secret_key: Option<Vec<u8>>,
}

/// What login hands back to the client to unwrap.
#[derive(Debug)]
pub struct Keyring {
    pub wrapped_account_key: Vec<u8>,
    /// Newest first.
    pub keys: Vec<KeyRecord>,
}

/// A public view of an account at one key version.
#[derive(Debug)]
pub struct PublicUser {
    pub user_id: Uuid,
    pub email: Option<String>,
    pub public_key: Vec<u8>,
    pub key_version: i64,
    pub deleted: bool,
}

/// A session as listed.
#[derive(Debug)]
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

/// A send, after its shape was checked.
#[derive(Debug)]
pub struct NewMessage {
    pub sender: Uuid,
    pub recipient: Uuid,
    pub ciphertext: Vec<u8>,
    pub key_version: i64,
    pub sender_key_version: i64,
    pub sender_copy: Option<(Vec<u8>, i64)>,
    pub now: i64,
}

/// A mailbox entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: Uuid,
    pub mailbox: Uuid,
    pub seq: i64,
    pub sender: Uuid,
    pub recipient: Uuid,
    pub ciphertext: Vec<u8>,
    pub key_version: i64,
    pub sender_key_version: i64,
    pub created_at: i64,
}

/// Why a send was refused.
#[derive(Debug)]
pub enum SendRefused {
    UnknownRecipient,
    SenderGone,
    /// A key version that is not the newest, by the field that named it.
    Stale(&'static str),
}

/// Which way a page goes.
#[derive(Debug, Clone, Copy)]
pub enum Cursor {
    After(i64),
    Before(i64),
}

/// The columns of an entry, in the order `entry_from_row!` reads them by index (a lookup by name
/// per column and row cost the inbox a sixth of its time).
macro_rules! entry_columns {
    () => {
        "id, mailbox, seq, sender, recipient, ciphertext, key_version, sender_key_version, created_at"
    };
}

macro_rules! entry_from_row {
    ($row:expr) => {{
        let r = $row;
        Entry {
            id: r.try_get(0)?,
            mailbox: r.try_get(1)?,
            seq: r.try_get(2)?,
            sender: r.try_get(3)?,
            recipient: r.try_get(4)?,
            ciphertext: r.try_get(5)?,
            key_version: r.try_get(6)?,
            sender_key_version: r.try_get(7)?,
            created_at: r.try_get(8)?,
        }
    }};
}

fn sqlite_pool(size: u32) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(size.max(1))
        .acquire_timeout(Duration::from_secs(10))
        // An embedded connection does not break: no ping before each use.
        .test_before_acquire(false)
}

fn pg_pool(size: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(size.max(1))
        .acquire_timeout(Duration::from_secs(10))
        // sqlx pings every connection before handing it out: a round trip more for every query
        // (the send path's BEGIN took 0.5 ms under load). Ping only a connection that sat idle,
        // which is the one a database restart may have broken; one in use that breaks fails its
        // query and is dropped.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= Duration::from_secs(5) {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
}

/// Every deletion from a mailbox raises its version, in the deletion's transaction.
const BUMP_MAILBOX_REV: &str = "UPDATE users SET mailbox_rev = mailbox_rev + 1 WHERE id = $1";

impl Store {
    /// Opens (creating a SQLite file if needed) and migrates the database at `url`.
    pub async fn connect(url: &str, pool_size: u32) -> anyhow::Result<Store> {
        let store = if url.starts_with("sqlite:") {
            let options = SqliteConnectOptions::from_str(url)
                .with_context(|| format!("bad SQLite URL {url}"))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                // FULL: a commit is on disk before it returns, so a 201 survives power loss.
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                // Deleted rows (a deleted account) are overwritten, not left in free pages.
                .pragma("secure_delete", "ON")
                .busy_timeout(Duration::from_secs(10));
            let pool = sqlite_pool(pool_size)
                .connect_with(options)
                .await
                .with_context(|| format!("cannot open the SQLite database {url}"))?;
            // Read the durability settings back rather than trusting them.
            let sync: i64 = sqlx::query_scalar("PRAGMA synchronous")
                .fetch_one(&pool)
                .await?;
            let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
                .fetch_one(&pool)
                .await?;
            if sync != 2 || !journal.eq_ignore_ascii_case("wal") {
                bail!("SQLite is not in WAL mode with synchronous=FULL (journal_mode={journal}, synchronous={sync})");
            }
            Store::Sqlite(pool, WriteLock::default())
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = pg_pool(pool_size)
                .connect(url)
                .await
                .context("cannot connect to PostgreSQL")?;
            Store::Postgres(pool)
        } else {
            bail!("unsupported database URL {url:?}: use sqlite://PATH or postgres://…");
        };
        store.migrate().await?;
        Ok(store)
    }

    /// A PostgreSQL store of its own for a task on another runtime (the send writer's): one
    /// connection with the same options as `pool`'s, made lazily on the runtime that calls this.
    pub fn pg_single_connection(pool: &Pool<Postgres>) -> Store {
        Store::Postgres(pg_pool(1).connect_lazy_with((*pool.connect_options()).clone()))
    }

    /// On SQLite, the node's write lock (see [`WriteLock`]); nothing on PostgreSQL.
    async fn write_lock(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self {
            Store::Sqlite(_, lock) => Some(lock.0.lock().await),
            Store::Postgres(_) => None,
        }
    }

    /// The backend's name, for logs and metrics.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(..) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    async fn migrate(&self) -> anyhow::Result<()> {
        let migrations = match self {
            Store::Sqlite(..) => SQLITE_MIGRATIONS,
            Store::Postgres(_) => POSTGRES_MIGRATIONS,
        };
        on!(self, pool => {
            let mut tx = pool.begin().await?;
            if let Store::Postgres(_) = self {
                // Nodes starting together take turns.
                sqlx::query("SELECT pg_advisory_xact_lock(7301)").execute(&mut *tx).await?;
            }
            sqlx::raw_sql(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
            )
            .execute(&mut *tx)
            .await?;
            let applied: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM schema_migrations")
                .fetch_one(&mut *tx)
                .await?;
            for (version, sql) in migrations {
                if Some(*version) <= applied {
                    continue;
                }
                sqlx::raw_sql(sql).execute(&mut *tx).await.with_context(|| format!("migration {version}"))?;
                sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)")
                    .bind(version)
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await?;
                tracing::info!(version, backend = self.backend(), "applied migration");
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        on!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()))
    }

    /// (connections open, connections idle) of the pool.
    pub fn pool_usage(&self) -> (u32, usize) {
        on!(self, pool => (pool.size(), pool.num_idle()))
    }

    /// A server secret by name, made on first use and shared by every node on this database.
    pub async fn server_secret(&self, name: &str, fresh: Vec<u8>) -> Result<Vec<u8>, sqlx::Error> {
        on_write!(self, pool => {
            sqlx::query("INSERT INTO server_secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
                .bind(name)
                .bind(&fresh)
                .execute(pool)
                .await?;
            sqlx::query_scalar("SELECT value FROM server_secrets WHERE name = $1").bind(name).fetch_one(pool).await
        })
    }

    /// Stores a new account; `Ok(false)` when the email is taken.
    pub async fn create_account(&self, a: &NewAccount) -> Result<bool, sqlx::Error> {
        let (rec_hash, rec_wrapped) = match &a.recovery {
            Some((h, w)) => (Some(h), Some(w)),
            None => (None, None),
        };
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO users (id, email, kdf_salt, kdf_opslimit, kdf_memlimit, auth_hash, wrapped_account_key, \
                 recovery_auth_hash, recovery_wrapped, key_version, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10) ON CONFLICT (email) DO NOTHING",
            )
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
            sqlx::query(
                "INSERT INTO user_keys (user_id, key_version, public_key, wrapped_secret_key, created_at) \
                 VALUES ($1, 1, $2, $3, $4)",
            )
            .bind(a.id)
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
        on!(self, pool => {
            let row = sqlx::query(
                "SELECT kdf_salt, kdf_opslimit, kdf_memlimit FROM users WHERE email = $1 AND deleted_at IS NULL",
            )
            .bind(email)
            .fetch_optional(pool)
            .await?;
            match row {
                None => Ok(None),
                Some(r) => Ok(Some(Kdf {
                    salt: r.try_get("kdf_salt")?,
                    opslimit: r.try_get("kdf_opslimit")?,
                    memlimit: r.try_get("kdf_memlimit")?,
                })),
            }
        })
    }

    /// What login needs of a live account, in one query: the auth hash, the wrapped account key
    /// and every key version, newest first.
    pub async fn credentials(&self, email: &str) -> Result<Option<Credentials>, sqlx::Error> {
        on!(self, pool => {
            let rows = sqlx::query(
                "SELECT u.id, u.auth_hash, u.wrapped_account_key, k.key_version, k.public_key, \
                 k.wrapped_secret_key FROM users u JOIN user_keys k ON k.user_id = u.id \
                 WHERE u.email = $1 AND u.deleted_at IS NULL ORDER BY k.key_version DESC",
            )
            .bind(email)
            .fetch_all(pool)
            .await?;
            let Some(first) = rows.first() else { return Ok(None) };
            let Some(wrapped_account_key) = first.try_get(2)? else { return Ok(None) };
            let mut keys = Vec::with_capacity(rows.len());
            for r in &rows {
                keys.push(KeyRecord {
                    key_version: r.try_get(3)?,
                    public_key: r.try_get(4)?,
                    wrapped_secret_key: r.try_get(5)?,
                });
            }
            Ok(Some(Credentials {
                user_id: first.try_get(0)?,
                auth_hash: first.try_get(1)?,
                keyring: Keyring { wrapped_account_key, keys },
            }))
        })
    }

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
        macro_rules! session_insert {
            () => {
                "INSERT INTO sessions (id, user_id, device_name, created_at, last_used_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $4, $5)"
            };
        }
        match self {
            // One statement, so one round trip and an implicit transaction.
            Store::Postgres(pool) => {
                sqlx::query(concat!(
                    "WITH s AS (",
                    session_insert!(),
                    ") INSERT INTO refresh_tokens (hash, session_id) VALUES ($6, $1)"
                ))
                .bind(id)
                .bind(user_id)
                .bind(device_name)
                .bind(now)
                .bind(expires_at)
                .bind(refresh_hash)
                .execute(pool)
                .await?;
            }
            Store::Sqlite(pool, _) => {
                let _writing = self.write_lock().await;
                let mut tx = pool.begin().await?;
                sqlx::query(session_insert!())
                    .bind(id)
                    .bind(user_id)
                    .bind(device_name)
                    .bind(now)
                    .bind(expires_at)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("INSERT INTO refresh_tokens (hash, session_id) VALUES ($1, $2)")
                    .bind(refresh_hash)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
        }
        Ok(id)
    }

    /// Whether a session is live for this user; notes its use at most once a minute.
    pub async fn session_live(
        &self,
        session_id: Uuid,
        user_id: Uuid,
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        on!(self, pool => {
            let last: Option<i64> = sqlx::query_scalar(
                "SELECT last_used_at FROM sessions WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL",
            )
            .bind(session_id)
            .bind(user_id)
            .fetch_optional(pool)
            .await?;
            match last {
                None => Ok(false),
                Some(last) => {
                    if now - last > 60_000 {
                        let _writing = self.write_lock().await;
                        sqlx::query("UPDATE sessions SET last_used_at = $1 WHERE id = $2")
                            .bind(now)
                            .bind(session_id)
                            .execute(pool)
                            .await?;
                    }
                    Ok(true)
                }
            }
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
            let row = sqlx::query(
                "SELECT t.session_id, t.used_at, s.user_id, s.revoked_at, s.expires_at \
                 FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.hash = $1",
            )
            .bind(old_hash)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else { return Ok(Refreshed::Invalid) };
            let session_id: Uuid = row.try_get("session_id")?;
            let used_at: Option<i64> = row.try_get("used_at")?;
            let revoked_at: Option<i64> = row.try_get("revoked_at")?;
            let session_expires: i64 = row.try_get("expires_at")?;
            if revoked_at.is_some() {
                return Ok(Refreshed::Invalid);
            }
            if used_at.is_some() {
                sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                    .bind(now)
                    .bind(session_id)
                    .execute(&mut *tx)
                    .await?;
                notify!(self, tx, notification::session_revoked(session_id));
                tx.commit().await?;
                return Ok(Refreshed::Reused(session_id));
            }
            if session_expires <= now {
                return Ok(Refreshed::Invalid);
            }
            // Only one of two concurrent refreshes with the same token can win this update.
            let won = sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL")
                .bind(now)
                .bind(old_hash)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if won == 0 {
                return Ok(Refreshed::Invalid);
            }
            sqlx::query("INSERT INTO refresh_tokens (hash, session_id) VALUES ($1, $2)")
                .bind(new_hash)
                .bind(session_id)
                .execute(&mut *tx)
                .await?;
            sqlx::query("UPDATE sessions SET last_used_at = $1, expires_at = $2 WHERE id = $3")
                .bind(now)
                .bind(expires_at)
                .bind(session_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Refreshed::Rotated { user_id: row.try_get("user_id")?, session_id })
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
            let n = sqlx::query(
                "UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND user_id = $3 AND revoked_at IS NULL",
            )
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
        on!(self, pool => {
            let rows = sqlx::query(
                "SELECT id, device_name, created_at, last_used_at FROM sessions \
                 WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at, id",
            )
            .bind(user_id)
            .fetch_all(pool)
            .await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in rows {
                out.push(SessionRow {
                    id: r.try_get("id")?,
                    device_name: r.try_get("device_name")?,
                    created_at: r.try_get("created_at")?,
                    last_used_at: r.try_get("last_used_at")?,
                });
            }
            Ok(out)
        })
    }

    /// A user's key at `version` (the newest when `None`). Deleted accounts are found only by id
    /// and version (so that what they sent still verifies).
    pub async fn public_user(
        &self,
        by: UserRef<'_>,
        version: Option<i64>,
    ) -> Result<Option<PublicUser>, sqlx::Error> {
        let (filter, id, email) = match by {
            UserRef::Id(id) => ("u.id = $1", Some(id), None),
            UserRef::Email(email) => ("u.email = $1", None, Some(email)),
        };
        let version_filter = if version.is_some() {
            "k.key_version = $2"
        } else {
            "k.key_version = u.key_version"
        };
        let live = if version.is_some() {
            ""
        } else {
            " AND u.deleted_at IS NULL"
        };
        let sql = format!(
            "SELECT u.id, u.email, u.deleted_at, k.public_key, k.key_version FROM users u \
             JOIN user_keys k ON k.user_id = u.id WHERE {filter} AND {version_filter}{live}"
        );
        on!(self, pool => {
            let mut q = sqlx::query(&sql);
            q = match (id, email) {
                (Some(id), _) => q.bind(id),
                (_, email) => q.bind(email),
            };
            if let Some(v) = version {
                q = q.bind(v);
            }
            let Some(r) = q.fetch_optional(pool).await? else { return Ok(None) };
            let deleted_at: Option<i64> = r.try_get("deleted_at")?;
            Ok(Some(PublicUser {
                user_id: r.try_get("id")?,
                email: r.try_get("email")?,
                public_key: r.try_get("public_key")?,
                key_version: r.try_get("key_version")?,
                deleted: deleted_at.is_some(),
            }))
        })
    }

    /// Group commit: stores many sends (each with the next `seq` of its mailboxes, and its sender
    /// copy) in one transaction, so one commit and one fsync. A refused send leaves no trace.
    /// Nothing is acknowledged before the commit. Answers the recipient's entry of each send.
    ///
    /// Every account involved is locked first (PostgreSQL: in id order, so that concurrent
    /// batches on several nodes never deadlock; SQLite: its write lock, with `BEGIN IMMEDIATE`),
    /// then the sends are checked and numbered by `plan_batch`, and written with one statement
    /// per table.
    pub async fn send_batch(
        &self,
        batch: &[NewMessage],
    ) -> Result<Vec<Result<Entry, SendRefused>>, sqlx::Error> {
        let mut involved: Vec<Uuid> = batch.iter().flat_map(|m| [m.recipient, m.sender]).collect();
        involved.sort();
        involved.dedup();
        match self {
            Store::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                // Locked in id order, so that two nodes' batches never deadlock.
                let accounts: Vec<(Uuid, i64, i64)> = sqlx::query_as(
                    "SELECT id, key_version, last_seq FROM users WHERE id = ANY($1) AND deleted_at IS NULL \
                     ORDER BY id FOR UPDATE",
                )
                .bind(&involved)
                .fetch_all(&mut *tx)
                .await?;
                let plan = plan_batch(batch, &accounts);
                if !plan.rows.id.is_empty() {
                    write_batch_pg(&mut tx, &plan).await?;
                }
                tx.commit().await?;
                Ok(plan.results)
            }
            Store::Sqlite(pool, _) => {
                let _writing = self.write_lock().await;
                // IMMEDIATE: the write lock first, so that the read below cannot go stale.
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                let sql = format!(
                    "SELECT id, key_version, last_seq FROM users WHERE deleted_at IS NULL AND id IN ({})",
                    placeholders(1, involved.len())
                );
                let mut read = sqlx::query_as(&sql);
                for id in &involved {
                    read = read.bind(id);
                }
                let accounts: Vec<(Uuid, i64, i64)> = read.fetch_all(&mut *tx).await?;
                let plan = plan_batch(batch, &accounts);
                if !plan.rows.id.is_empty() {
                    write_batch_sqlite(&mut tx, &plan).await?;
                }
                tx.commit().await?;
                Ok(plan.results)
            }
        }
    }

    /// A page of a mailbox: ascending after a `seq`, or descending before one.
    pub async fn entries(
        &self,
        mailbox: Uuid,
        cursor: Cursor,
        limit: i64,
    ) -> Result<Vec<Entry>, sqlx::Error> {
        let (sql, bound) = match cursor {
            Cursor::After(s) => (
                concat!(
                    "SELECT ",
                    entry_columns!(),
                    " FROM messages WHERE mailbox = $1 AND seq > $2 ORDER BY seq ASC LIMIT $3"
                ),
                s,
            ),
            Cursor::Before(s) => (
                concat!(
                    "SELECT ",
                    entry_columns!(),
                    " FROM messages WHERE mailbox = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
                ),
                s,
            ),
        };
        on!(self, pool => {
            let rows = sqlx::query(sql).bind(mailbox).bind(bound).bind(limit).fetch_all(pool).await?;
            let mut out = Vec::with_capacity(rows.len());
            for r in &rows {
                out.push(entry_from_row!(r));
            }
            Ok(out)
        })
    }

    /// The version of a live account's mailbox (see `pages`).
    pub async fn mailbox_version(
        &self,
        mailbox: Uuid,
    ) -> Result<Option<MailboxVersion>, sqlx::Error> {
        on!(self, pool => {
            let row: Option<(i64, i64)> =
                sqlx::query_as("SELECT last_seq, mailbox_rev FROM users WHERE id = $1 AND deleted_at IS NULL")
                    .bind(mailbox)
                    .fetch_optional(pool)
                    .await?;
            Ok(row.map(|(last_seq, rev)| MailboxVersion { last_seq, rev }))
        })
    }

    /// Deletes an entry of the caller's own mailbox; `false` if there is none such.
    pub async fn delete_entry(&self, mailbox: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query("DELETE FROM messages WHERE id = $1 AND mailbox = $2")
                .bind(id)
                .bind(mailbox)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n > 0 {
                sqlx::query(BUMP_MAILBOX_REV).bind(mailbox).execute(&mut *tx).await?;
                tx.commit().await?;
            }
            Ok(n > 0)
        })
    }

    /// The auth hash of a live account, to check a `current_auth_key`.
    pub async fn auth_hash(&self, user_id: Uuid) -> Result<Option<Vec<u8>>, sqlx::Error> {
        on!(self, pool => {
            let h: Option<Option<Vec<u8>>> =
                sqlx::query_scalar("SELECT auth_hash FROM users WHERE id = $1 AND deleted_at IS NULL")
                    .bind(user_id)
                    .fetch_optional(pool)
                    .await?;
            Ok(h.flatten())
        })
    }

    /// Swaps kdf, auth hash and wrapped account key in one transaction, and revokes every
    /// session but the one kept (all of them after a recovery). A recovery token (its hash) is
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
                    let user: Option<Uuid> = sqlx::query_scalar(
                        "UPDATE recovery_tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL AND expires_at > $1 \
                         RETURNING user_id",
                    )
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
            let n = sqlx::query(
                "UPDATE users SET kdf_salt = $1, kdf_opslimit = $2, kdf_memlimit = $3, auth_hash = $4, \
                 wrapped_account_key = $5 WHERE id = $6 AND deleted_at IS NULL",
            )
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
            let revoke = "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL";
            match keep {
                Some(keep) => {
                    let sql = format!("{revoke} AND id <> $3");
                    sqlx::query(&sql).bind(now).bind(user_id).bind(keep).execute(&mut *tx).await?
                }
                None => sqlx::query(revoke).bind(now).bind(user_id).execute(&mut *tx).await?,
            };
            notify!(self, tx, notification::user_revoked(user_id, keep));
            tx.commit().await?;
            Ok(Some(user_id))
        })
    }

    /// Replaces the recovery wrap (the old recovery key stops working).
    pub async fn set_recovery(
        &self,
        user_id: Uuid,
        auth_hash: &[u8],
        wrapped: &[u8],
    ) -> Result<(), sqlx::Error> {
        on_write!(self, pool => {
            sqlx::query(
                "UPDATE users SET recovery_auth_hash = $1, recovery_wrapped = $2 WHERE id = $3 AND deleted_at IS NULL",
            )
            .bind(auth_hash)
            .bind(wrapped)
            .bind(user_id)
            .execute(pool)
            .await?;
            Ok(())
        })
    }

    /// (user id, recovery auth hash, recovery wrap) of a live account that has a recovery key.
    pub async fn recovery(
        &self,
        email: &str,
    ) -> Result<Option<(Uuid, Vec<u8>, Vec<u8>)>, sqlx::Error> {
        on!(self, pool => {
            let row = sqlx::query(
                "SELECT id, recovery_auth_hash, recovery_wrapped FROM users WHERE email = $1 AND deleted_at IS NULL \
                 AND recovery_auth_hash IS NOT NULL AND recovery_wrapped IS NOT NULL",
            )
            .bind(email)
            .fetch_optional(pool)
            .await?;
            match row {
                None => Ok(None),
                Some(r) => Ok(Some((r.try_get("id")?, r.try_get("recovery_auth_hash")?, r.try_get("recovery_wrapped")?))),
            }
        })
    }

    /// Stores a recovery token's hash.
    pub async fn create_recovery_token(
        &self,
        user_id: Uuid,
        hash: &[u8],
        expires_at: i64,
    ) -> Result<(), sqlx::Error> {
        on_write!(self, pool => {
            sqlx::query("INSERT INTO recovery_tokens (hash, user_id, expires_at) VALUES ($1, $2, $3)")
                .bind(hash)
                .bind(user_id)
                .bind(expires_at)
                .execute(pool)
                .await?;
            Ok(())
        })
    }

    /// Adds key version `version` (= newest + 1); `false` if `version` is not that.
    pub async fn rotate_key(
        &self,
        user_id: Uuid,
        version: i64,
        public_key: &[u8],
        wrapped_secret_key: &[u8],
        now: i64,
    ) -> Result<bool, sqlx::Error> {
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "UPDATE users SET key_version = $1 WHERE id = $2 AND key_version = $3 AND deleted_at IS NULL",
            )
            .bind(version)
            .bind(user_id)
            .bind(version - 1)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Ok(false);
            }
            sqlx::query(
                "INSERT INTO user_keys (user_id, key_version, public_key, wrapped_secret_key, created_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(user_id)
            .bind(version)
            .bind(public_key)
            .bind(wrapped_secret_key)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Deletes an account in one transaction: the email, auth hash, wrapped keys, recovery wrap,
    /// sessions, recovery tokens and the whole mailbox go; the user id and its public keys stay,
    /// marked deleted, so that what it sent still verifies in other mailboxes.
    pub async fn delete_account(&self, user_id: Uuid, now: i64) -> Result<bool, sqlx::Error> {
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(
                "UPDATE users SET email = NULL, kdf_salt = NULL, kdf_opslimit = NULL, kdf_memlimit = NULL, \
                 auth_hash = NULL, wrapped_account_key = NULL, recovery_auth_hash = NULL, recovery_wrapped = NULL, \
                 deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL",
            )
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if n == 0 {
                return Ok(false);
            }
            for sql in [
                "UPDATE user_keys SET wrapped_secret_key = NULL WHERE user_id = $1",
                "DELETE FROM messages WHERE mailbox = $1",
                BUMP_MAILBOX_REV,
                "DELETE FROM recovery_tokens WHERE user_id = $1",
                "DELETE FROM refresh_tokens WHERE session_id IN (SELECT id FROM sessions WHERE user_id = $1)",
                "DELETE FROM sessions WHERE user_id = $1",
            ] {
                sqlx::query(sql).bind(user_id).execute(&mut *tx).await?;
            }
            notify!(self, tx, notification::user_revoked(user_id, None));
            tx.commit().await?;
            Ok(true)
        })
    }

    /// Closes the pool, waiting for connections in use.
    pub async fn close(&self) {
        on!(self, pool => pool.close().await)
    }
}

/// What a batch of sends writes, worked out from its accounts' rows (id, newest key version,
/// last seq), which the transaction holds locked.
struct BatchPlan {
    /// Per send, in order: its entry, or why it was refused.
    results: Vec<Result<Entry, SendRefused>>,
    /// The entries to insert (each send's, and its sender copy).
    rows: EntryColumns,
    /// The mailboxes whose last seq moved, with the new value.
    bumped: Vec<(Uuid, i64)>,
}

/// Checks each send against its accounts as the sends before it in the batch left them, and
/// numbers its entries with the next seqs of their mailboxes. No I/O: both backends share it.
fn plan_batch(batch: &[NewMessage], accounts: &[(Uuid, i64, i64)]) -> BatchPlan {
    // id -> (newest key version, last seq assigned)
    let mut state: std::collections::HashMap<Uuid, (i64, i64)> = accounts
        .iter()
        .map(|(id, v, last)| (*id, (*v, *last)))
        .collect();
    let mut rows = EntryColumns::default();
    let mut results = Vec::with_capacity(batch.len());
    for m in batch {
        let (Some(&(recipient_version, _)), sender) =
            (state.get(&m.recipient), state.get(&m.sender))
        else {
            results.push(Err(SendRefused::UnknownRecipient));
            continue;
        };
        let Some(&(sender_version, _)) = sender else {
            results.push(Err(SendRefused::SenderGone));
            continue;
        };
        let refusal = if m.key_version != recipient_version {
            Some("key_version")
        } else if m.sender_key_version != sender_version {
            Some("sender_key_version")
        } else if m
            .sender_copy
            .as_ref()
            .is_some_and(|(_, v)| *v != sender_version)
        {
            Some("sender_copy.key_version")
        } else {
            None
        };
        if let Some(field) = refusal {
            results.push(Err(SendRefused::Stale(field)));
            continue;
        }
        let mut next_seq = |mailbox: Uuid| {
            let account = state.entry(mailbox).or_insert((0, 0));
            account.1 += 1;
            account.1
        };
        let entry = Entry {
            id: Uuid::now_v7(),
            mailbox: m.recipient,
            seq: next_seq(m.recipient),
            sender: m.sender,
            recipient: m.recipient,
            ciphertext: m.ciphertext.clone(),
            key_version: m.key_version,
            sender_key_version: m.sender_key_version,
            created_at: m.now,
        };
        rows.push(&entry);
        if let (Some((copy, v)), true) = (&m.sender_copy, m.sender != m.recipient) {
            let seq = next_seq(m.sender);
            rows.push(&Entry {
                id: Uuid::now_v7(),
                mailbox: m.sender,
                seq,
                sender: m.sender,
                recipient: m.recipient,
                ciphertext: copy.clone(),
                key_version: *v,
                sender_key_version: *v,
                created_at: m.now,
            });
        }
        results.push(Ok(entry));
    }
    let bumped = accounts
        .iter()
        .filter_map(|(id, _, before)| {
            let last = state.get(id).map_or(*before, |s| s.1);
            (last != *before).then_some((*id, last))
        })
        .collect();
    BatchPlan {
        results,
        rows,
        bumped,
    }
}

/// A batch's writes on PostgreSQL in one statement, one round trip: the seqs, the entries (one
/// UNNEST insert) and the notifications (sent at commit).
async fn write_batch_pg(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    plan: &BatchPlan,
) -> Result<(), sqlx::Error> {
    let (ids, last): (Vec<Uuid>, Vec<i64>) = plan.bumped.iter().copied().unzip();
    let notes: Vec<String> = ids.iter().map(|id| notification::stored(*id)).collect();
    let rows = &plan.rows;
    sqlx::query(
        "WITH bump AS (UPDATE users SET last_seq = v.last FROM UNNEST($1::uuid[], $2::int8[]) AS v(id, last) \
         WHERE users.id = v.id), \
         ins AS (INSERT INTO messages (id, mailbox, seq, sender, recipient, ciphertext, key_version, \
         sender_key_version, created_at) SELECT * FROM UNNEST($3::uuid[], $4::uuid[], $5::int8[], $6::uuid[], \
         $7::uuid[], $8::bytea[], $9::int8[], $10::int8[], $11::int8[])) \
         SELECT pg_notify($12, n) FROM UNNEST($13::text[]) AS n",
    )
    .bind(&ids)
    .bind(&last)
    .bind(&rows.id)
    .bind(&rows.mailbox)
    .bind(&rows.seq)
    .bind(&rows.sender)
    .bind(&rows.recipient)
    .bind(&rows.ciphertext)
    .bind(&rows.key_version)
    .bind(&rows.sender_key_version)
    .bind(&rows.created_at)
    .bind(crate::hub::CHANNEL)
    .bind(&notes)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A batch's writes on SQLite: one UPDATE for the seqs and one multi-row INSERT (SQLite has no
/// arrays; a batch of at most 256 sends binds at most 4,608 values, well under its limit).
async fn write_batch_sqlite(
    tx: &mut sqlx::Transaction<'_, Sqlite>,
    plan: &BatchPlan,
) -> Result<(), sqlx::Error> {
    let n = plan.bumped.len();
    let sql = format!(
        "UPDATE users SET last_seq = CASE id {} END WHERE id IN ({})",
        (0..n)
            .map(|i| format!("WHEN ${} THEN ${}", 2 * i + 1, 2 * i + 2))
            .collect::<Vec<_>>()
            .join(" "),
        placeholders(2 * n + 1, n)
    );
    let mut update = sqlx::query(&sql);
    for (id, last) in &plan.bumped {
        update = update.bind(id).bind(last);
    }
    for (id, _) in &plan.bumped {
        update = update.bind(id);
    }
    update.execute(&mut **tx).await?;
    let rows = &plan.rows;
    let sql = format!(
        "INSERT INTO messages (id, mailbox, seq, sender, recipient, ciphertext, key_version, sender_key_version, \
         created_at) VALUES {}",
        (0..rows.id.len())
            .map(|i| format!("({})", placeholders(9 * i + 1, 9)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut insert = sqlx::query(&sql);
    for i in 0..rows.id.len() {
        insert = insert
            .bind(rows.id[i])
            .bind(rows.mailbox[i])
            .bind(rows.seq[i])
            .bind(rows.sender[i])
            .bind(rows.recipient[i])
            .bind(&rows.ciphertext[i])
            .bind(rows.key_version[i])
            .bind(rows.sender_key_version[i])
            .bind(rows.created_at[i]);
    }
    insert.execute(&mut **tx).await?;
    Ok(())
}

/// `$first, $first+1, …` (`count` of them), for statements built to a batch's size.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Mailbox entries as columns, for one multi-row insert.
#[derive(Default)]
struct EntryColumns {
    id: Vec<Uuid>,
    mailbox: Vec<Uuid>,
    seq: Vec<i64>,
    sender: Vec<Uuid>,
    recipient: Vec<Uuid>,
    ciphertext: Vec<Vec<u8>>,
    key_version: Vec<i64>,
    sender_key_version: Vec<i64>,
    created_at: Vec<i64>,
}

impl EntryColumns {
    fn push(&mut self, e: &Entry) {
        self.id.push(e.id);
        self.mailbox.push(e.mailbox);
        self.seq.push(e.seq);
        self.sender.push(e.sender);
        self.recipient.push(e.recipient);
        self.ciphertext.push(e.ciphertext.clone());
        self.key_version.push(e.key_version);
        self.sender_key_version.push(e.sender_key_version);
        self.created_at.push(e.created_at);
    }
}

/// What entitles a password change.
#[derive(Debug, Clone, Copy)]
pub enum PasswordProof<'a> {
    /// A signed-in session that proved the current password; it stays signed in.
    Session { user_id: Uuid, keep: Uuid },
    /// The hash of a recovery token; every session is revoked.
    RecoveryToken(&'a [u8]),
}

/// How a user is looked up.
#[derive(Debug, Clone, Copy)]
pub enum UserRef<'a> {
    Id(Uuid),
    Email(&'a str),
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(from: u128, to: u128, key_version: i64, copy: bool) -> NewMessage {
        NewMessage {
            sender: Uuid::from_u128(from),
            recipient: Uuid::from_u128(to),
            ciphertext: vec![to as u8],
            key_version,
            sender_key_version: 1,
            sender_copy: copy.then(|| (vec![from as u8], 1)),
            now: 7,
        }
    }

    #[test]
    fn a_batch_numbers_each_mailbox_on_from_its_last_seq_and_skips_refusals() {
        // Accounts 1 and 2 (key version 1, last seqs 10 and 20); 3 does not exist; 4 has rotated.
        let accounts = [
            (Uuid::from_u128(1), 1, 10),
            (Uuid::from_u128(2), 1, 20),
            (Uuid::from_u128(4), 2, 40),
        ];
        let batch = [
            send(1, 2, 1, false), // 2 gets 21
            send(1, 3, 1, false), // no such recipient
            send(1, 2, 2, false), // stale recipient key: takes no seq
            send(1, 2, 1, true),  // 2 gets 22, and 1 gets 11 for the sender copy
            send(3, 2, 1, false), // the sender is gone
            send(1, 4, 2, false), // 4 gets 41
            send(2, 2, 1, true),  // a note to self: one entry, 23
        ];
        let plan = plan_batch(&batch, &accounts);
        let seqs: Vec<_> = plan
            .results
            .iter()
            .map(|r| match r {
                Ok(e) => Ok(e.seq),
                Err(SendRefused::UnknownRecipient) => Err("unknown"),
                Err(SendRefused::SenderGone) => Err("gone"),
                Err(SendRefused::Stale(field)) => Err(*field),
            })
            .collect();
        assert_eq!(
            seqs,
            [
                Ok(21),
                Err("unknown"),
                Err("key_version"),
                Ok(22),
                Err("gone"),
                Ok(41),
                Ok(23)
            ]
        );
        let written: Vec<_> = plan
            .rows
            .mailbox
            .iter()
            .zip(&plan.rows.seq)
            .map(|(m, s)| (m.as_u128(), *s))
            .collect();
        assert_eq!(written, [(2, 21), (2, 22), (1, 11), (4, 41), (2, 23)]);
        // The sender copy is sealed to the sender's key version and holds the copy.
        assert_eq!(plan.rows.ciphertext[2], vec![1]);
        let bumped: Vec<_> = plan
            .bumped
            .iter()
            .map(|(id, s)| (id.as_u128(), *s))
            .collect();
        assert_eq!(bumped, [(1, 11), (2, 23), (4, 41)]);
    }
}
