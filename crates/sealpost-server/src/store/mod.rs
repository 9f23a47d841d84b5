//! The store: the only module that knows SQL, and the only one that can (its pools are private).
//! One interface, two real backends (embedded SQLite, PostgreSQL). Both accept the same
//! statements almost everywhere (`$1` placeholders, `RETURNING`, `ON CONFLICT`), so each method is
//! written once and compiled for each pool by [`on!`]; where the dialects differ, the two
//! statements stand side by side.
//!
//! One file per resource: [`accounts`], [`sessions`], [`keys`] (public keys and rotation),
//! [`mailbox`] (sends, pages, deletions), [`secrets`]; [`migrate`] brings a database up to date
//! and [`notify`] carries PostgreSQL's notifications to the push hub; [`backup`] snapshots,
//! inspects and (after a restore) raises seqs, and `retention` deletes old entries. The statements are `const`s
//! beside the method that runs them.
//!
//! Times are stored as Unix milliseconds. Every method that writes commits before it returns, so
//! a 2xx built on its answer is durable.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use sqlx::postgres::{PgPoolOptions, Postgres};
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};
use sqlx::{Pool, Sqlite};

/// Runs `$body` with `$pool` bound to the SQLite or the PostgreSQL pool: the same code, compiled
/// for each backend.
macro_rules! on {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite($pool, _) => $body,
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}

/// `on!` for a method that writes: on SQLite it first takes the node's write lock (see
/// [`WriteLock`]), held until the method returns.
macro_rules! on_write {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.db {
            $crate::store::Db::Sqlite($pool, _) => {
                let _writing = $store.write_lock().await;
                $body
            }
            $crate::store::Db::Postgres($pool) => $body,
        }
    };
}

/// On PostgreSQL with `LISTEN/NOTIFY` as the hub, queues a notification for every node (sent at
/// commit, with the transaction, or not at all); on SQLite there is one node, and with a NATS hub
/// the caller publishes after the commit.
macro_rules! notify {
    ($store:expr, $tx:expr, $payload:expr) => {
        if $store.notifies() {
            sqlx::query($crate::store::notify::NOTIFY)
                .bind($crate::store::notify::CHANNEL)
                .bind($payload)
                .execute(&mut *$tx)
                .await?;
        }
    };
}

pub mod accounts;
pub mod admin;
pub mod backup;
pub mod batch;
mod direct;
pub mod keys;
pub mod mailbox;
mod migrate;
pub mod notify;
mod retention;
pub mod secrets;
pub mod sessions;
#[cfg(feature = "test-support")]
pub mod testing;

pub use accounts::{Credentials, Kdf, Keyring, NewAccount, PasswordProof};
pub use batch::{Batch, Committed};
pub use keys::{KeyList, KeyRecord, PublicUser, UserRef};
pub use mailbox::{Cursor, Entry, NewMessage, SendRefused};
pub use sessions::{NewSession, Opened, Refreshed, Rotation, SessionRow};

/// The database behind one node. Cloning it is cheap (the pools are shared).
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    /// Whether writes queue `NOTIFY`s (PostgreSQL, unless a NATS hub carries the wake-ups).
    notify: bool,
}

/// The pools, private to the store: nothing outside it can run a statement.
#[derive(Debug, Clone)]
enum Db {
    Sqlite(Pool<Sqlite>, WriteLock),
    Postgres(Pool<Postgres>),
}

/// Which database a store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend's name, for logs and metrics.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// SQLite has one write lock per database. A writer that finds it taken sleeps in SQLite's busy
/// handler, in steps of 1 to 100 ms, which under load made most of login's p99. So every write on
/// SQLite first takes this lock, and writers queue in order, awake, in the server.
/// The lock also holds the connection the group commit writes with ([`direct`]).
#[derive(Debug, Clone)]
struct WriteLock {
    lock: Arc<tokio::sync::Mutex<()>>,
    direct: direct::Direct,
}

impl Db {
    /// SQLite over `pool`, with its write lock and the writer's connection to the same file.
    fn sqlite(pool: Pool<Sqlite>) -> Db {
        let path = pool.connect_options().get_filename().to_path_buf();
        let lock = WriteLock {
            lock: Arc::default(),
            direct: direct::Direct::new(path),
        };
        Db::Sqlite(pool, lock)
    }
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
        // sqlx pings every connection before handing it out: a round trip more for every query.
        // Ping only a connection that sat idle, which is the one a database restart may have
        // broken; one in use that breaks fails its query and is dropped.
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

/// The SQLite database and its `-wal` and `-shm` are readable by the server's user only: any
/// other local user could otherwise read every mailbox's metadata and ciphertext. A new database
/// file is created 0600 before SQLite opens it (SQLite gives its `-wal` and `-shm` the mode of the
/// database file); an existing one, and its companions, are made 0600.
fn private_sqlite_files(url: &str) -> anyhow::Result<()> {
    let Some(path) = backup::sqlite_path(url) else {
        return Ok(());
    };
    let path = path.to_string_lossy();
    let path = path.as_ref();
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        let private = std::fs::Permissions::from_mode(0o600);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                for file in [
                    path.to_owned(),
                    format!("{path}-wal"),
                    format!("{path}-shm"),
                ] {
                    if std::path::Path::new(&file).exists() {
                        std::fs::set_permissions(&file, private.clone())
                            .with_context(|| format!("cannot make {file} private (chmod 600)"))?;
                    }
                }
            }
            Err(e) => return Err(e).with_context(|| format!("cannot create the database {path}")),
        }
    }
    Ok(())
}

/// The options every SQLite connection of Sealpost's opens with (the server's, and the operator
/// commands'): WAL, `synchronous=FULL`, foreign keys, `secure_delete`, a 10 s busy timeout.
/// Creating a missing file is the caller's choice.
fn sqlite_options(url: &str) -> anyhow::Result<SqliteConnectOptions> {
    let options = SqliteConnectOptions::from_str(url)
        .with_context(|| format!("bad SQLite URL {url}"))?
        .busy_timeout(direct::BUSY_TIMEOUT);
    Ok(direct::PRAGMAS
        .iter()
        .fold(options, |options, (name, value)| {
            options.pragma(*name, *value)
        }))
}

const SQLITE_SYNCHRONOUS: &str = "PRAGMA synchronous";
const SQLITE_JOURNAL_MODE: &str = "PRAGMA journal_mode";
const PING: &str = "SELECT 1";

impl Store {
    /// Opens (creating a SQLite file if needed) and migrates the database at `url`.
    pub async fn connect(url: &str, pool_size: u32) -> anyhow::Result<Store> {
        let db = if url.starts_with("sqlite:") {
            private_sqlite_files(url)?;
            let options = sqlite_options(url)?.create_if_missing(true);
            let pool = sqlite_pool(pool_size)
                .connect_with(options)
                .await
                .with_context(|| format!("cannot open the SQLite database {url}"))?;
            // Read the durability settings back rather than trusting them.
            let sync: i64 = sqlx::query_scalar(SQLITE_SYNCHRONOUS)
                .fetch_one(&pool)
                .await?;
            let journal: String = sqlx::query_scalar(SQLITE_JOURNAL_MODE)
                .fetch_one(&pool)
                .await?;
            if sync != 2 || !journal.eq_ignore_ascii_case("wal") {
                bail!("SQLite is not in WAL mode with synchronous=FULL (journal_mode={journal}, synchronous={sync})");
            }
            Db::sqlite(pool)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            let pool = pg_pool(pool_size)
                .connect(url)
                .await
                .context("cannot connect to PostgreSQL")?;
            Db::Postgres(pool)
        } else {
            bail!("unsupported database URL {url:?}: use sqlite://PATH or postgres://…");
        };
        let store = Store::over(db);
        store.migrate().await?;
        Ok(store)
    }

    /// A store over an open pool; on PostgreSQL its writes queue `NOTIFY`s until
    /// [`Store::without_notify`].
    fn over(db: Db) -> Store {
        let notify = matches!(db, Db::Postgres(_));
        Store { db, notify }
    }

    /// A store of its own for a task on another runtime (the send writer's): on PostgreSQL one
    /// connection with the same options, made lazily on the runtime that first uses it; on SQLite
    /// the same store.
    pub fn single_connection(&self) -> Store {
        match &self.db {
            Db::Postgres(pool) => Store {
                db: Db::Postgres(pg_pool(1).connect_lazy_with((*pool.connect_options()).clone())),
                notify: self.notify,
            },
            Db::Sqlite(..) => self.clone(),
        }
    }

    /// On SQLite, the node's write lock (see [`WriteLock`]); nothing on PostgreSQL.
    async fn write_lock(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match &self.db {
            Db::Sqlite(_, lock) => Some(lock.lock.lock().await),
            Db::Postgres(_) => None,
        }
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        match &self.db {
            Db::Sqlite(..) => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// The same store, without `NOTIFY`s: another hub (NATS) carries the wake-ups, published
    /// by the caller after each commit.
    pub fn without_notify(mut self) -> Store {
        self.notify = false;
        self
    }

    /// Whether writes queue `NOTIFY`s for the other nodes.
    pub fn notifies(&self) -> bool {
        self.notify
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        on!(self, pool => sqlx::query(PING).execute(pool).await.map(|_| ()))
    }

    /// (connections open, connections idle) of the pool.
    pub fn pool_usage(&self) -> (u32, usize) {
        on!(self, pool => (pool.size(), pool.num_idle()))
    }

    /// Closes the pool, waiting for connections in use.
    pub async fn close(&self) {
        on!(self, pool => pool.close().await)
    }
}
