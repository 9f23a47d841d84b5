//! SQLite's group commit on a connection of its own, driven directly (rusqlite) by the writer on
//! its own thread: a batch's statements and its commit run one after the other on that thread,
//! in one go.
//!
//! Through sqlx every statement is a trip to the connection's worker thread and back, two
//! context switches, and a login took a dozen of them (the credentials, the transaction's begin,
//! each insert, the commit). On this kind of machine those switches, not the fsync, were most of
//! a login's time and of the server's CPU (docs/PERFORMANCE.md). Everything else on SQLite stays
//! on sqlx's pool; both open the same file with the same [`PRAGMAS`], and the same SQLite library
//! (sqlx's `libsqlite3-sys`, which rusqlite shares), so locking between them is SQLite's own.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context as _};
use rusqlite::{CachedStatement, Connection, OpenFlags};

/// The pragmas every SQLite connection of the server runs with, sqlx's and this one.
pub(super) const PRAGMAS: &[(&str, &str)] = &[
    ("journal_mode", "WAL"),
    // FULL: a commit is on disk before it returns, so a 2xx survives power loss.
    ("synchronous", "FULL"),
    ("foreign_keys", "ON"),
    // Deleted rows (a deleted account) are overwritten, not left in free pages.
    ("secure_delete", "ON"),
];

/// How long a statement waits for a lock held outside this process (a `sealpost admin`).
pub(super) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Shaped statements (one per batch size) kept prepared.
const STATEMENT_CACHE: usize = 64;

/// The writer's connection, opened by the first batch (so that a store that never writes one,
/// `sealpost admin`'s or a restore's, holds no second connection to the file).
#[derive(Debug, Clone)]
pub(super) struct Direct(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    path: PathBuf,
    conn: Mutex<Option<Connection>>,
}

impl Direct {
    /// The writer's connection to the database file the pool opened.
    pub(super) fn new(path: PathBuf) -> Direct {
        Direct(Arc::new(Inner {
            path,
            conn: Mutex::new(None),
        }))
    }

    /// Runs `work` on the connection, opening it first if need be. The caller holds the store's
    /// write lock, so nobody waits here but for the batch before.
    pub(super) fn with<T>(
        &self,
        work: impl FnOnce(&mut Connection) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut guard = self
            .0
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let conn = match &mut *guard {
            Some(conn) => conn,
            closed => closed.insert(open(&self.0.path)?),
        };
        work(conn)
    }
}

fn open(path: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("cannot open {} for the writer", path.display()))?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    for (name, value) in PRAGMAS {
        conn.pragma_update(None, name, value)?;
    }
    // Read the durability settings back rather than trusting them.
    let sync: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0))?;
    let journal: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0))?;
    if sync != 2 || !journal.eq_ignore_ascii_case("wal") {
        bail!("the writer's SQLite connection is not in WAL mode with synchronous=FULL (journal_mode={journal}, synchronous={sync})");
    }
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// A statement of the writer's, prepared once and kept. Its parameters are bound by position, so
/// each must be numbered as it is placed: `?N`, or `$N` in the order `$1, $2, …` of first
/// appearance (checked in debug builds: the tests).
pub(super) fn prepare<'c>(
    conn: &'c Connection,
    sql: &str,
) -> rusqlite::Result<CachedStatement<'c>> {
    let statement = conn.prepare_cached(sql)?;
    debug_assert!(
        (1..=statement.parameter_count()).all(|i| statement
            .parameter_name(i)
            .is_none_or(|name| name[1..] == *i.to_string())),
        "parameters out of order in {sql}"
    );
    Ok(statement)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbered_parameters_pass_the_check() {
        let conn = Connection::open_in_memory().unwrap();
        prepare(&conn, "SELECT $1, $2, $1, ?3").unwrap();
        prepare(&conn, "SELECT ?2, ?1").unwrap();
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "parameters out of order")]
    fn dollar_parameters_out_of_order_are_caught() {
        // SQLite would bind the second value to `$3` and the third to `$2`.
        let conn = Connection::open_in_memory().unwrap();
        let _ = prepare(&conn, "SELECT $1, $3, $2");
    }
}
