//! Backups and restores (`sealpost backup`, `sealpost restore`): a consistent snapshot of a live
//! SQLite database, a look inside a database file (is it Sealpost's, how far migrated, what it
//! holds), and the raise of every mailbox's `seq` after a restore.
//!
//! A snapshot is `VACUUM INTO`: one read transaction of the source, so it holds every commit
//! made before it began and none half made, and in WAL mode it never blocks the server's writes.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context as _};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection as _, SqliteConnection};
use uuid::Uuid;

use super::Store;

/// The path of a `sqlite:` URL (`None` for another scheme or an in-memory database).
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = path.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// What a database holds, as a backup's summary shows it. Counts and ids only: never an email,
/// a key or a ciphertext.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Summary {
    /// Live accounts.
    pub accounts: i64,
    /// Mailboxes that ever received an entry (of live accounts).
    pub mailboxes: i64,
    /// Entries stored.
    pub entries: i64,
    /// The highest newest `seq` of any mailbox.
    pub max_seq: i64,
    /// Each of those mailboxes with its newest `seq` assigned (its counter) and its entries.
    pub newest_seq: Vec<MailboxSeq>,
}

/// One mailbox's counter.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct MailboxSeq {
    pub mailbox: Uuid,
    pub last_seq: i64,
    pub entries: i64,
}

/// What a look inside a SQLite file found.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The migrations applied to it, ascending.
    pub applied: Vec<i64>,
    /// The migrations this server knows that it lacks (applied on restore).
    pub missing: Vec<i64>,
    pub summary: Summary,
}

/// What a raise did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Raised {
    /// Mailboxes (account rows) whose counter moved.
    pub mailboxes: u64,
    pub seq_margin: i64,
    /// The highest newest `seq` before and after.
    pub max_seq_before: i64,
    pub max_seq_after: i64,
}

const QUICK_CHECK: &str = "PRAGMA quick_check";
const TABLE_EXISTS: &str = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1";
const ANY_TABLE: &str = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'";
const APPLIED: &str = "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version";
const APPLIED_LEGACY: &str = "SELECT version FROM schema_migrations ORDER BY version";
const VACUUM_INTO: &str = "VACUUM INTO $1";
const COUNT_ACCOUNTS: &str = "SELECT COUNT(*) FROM users WHERE deleted_at IS NULL";
const COUNT_ENTRIES: &str = "SELECT COUNT(*) FROM messages";
const MAILBOX_SEQS: &str = "SELECT id AS mailbox, last_seq, entries FROM users \
     WHERE deleted_at IS NULL AND last_seq > 0 ORDER BY id";
/// The same, before migration 0005 gave each account its `entries`.
const MAILBOX_SEQS_COUNTED: &str = "SELECT id AS mailbox, last_seq, (SELECT COUNT(*) FROM \
     messages m WHERE m.mailbox = users.id) AS entries FROM users \
     WHERE deleted_at IS NULL AND last_seq > 0 ORDER BY id";
const MAX_SEQ: &str = "SELECT COALESCE(MAX(last_seq), 0) FROM users";
/// Every mailbox's next seq jumps by the margin, and its version moves, so that a cached page is
/// not served and a client resuming past the restored newest seq still gets what comes next.
const RAISE_SEQS: &str = "UPDATE users SET last_seq = last_seq + $1, mailbox_rev = mailbox_rev + 1";
const RECORD_RESTORE: &str =
    "INSERT INTO restores (restored_at, seq_margin, mailboxes, source) VALUES ($1, $2, $3, $4)";
/// Back to a rollback journal, which folds the WAL into the file and removes it, so that the
/// file alone is the whole database and can be renamed into place.
const JOURNAL_DELETE: &str = "PRAGMA journal_mode = DELETE";

/// The highest seq a raise may reach: far below `i64::MAX`, which paging treats as "the newest".
const SEQ_CEILING: i64 = 1 << 62;

async fn open(path: &Path, read_only: bool) -> anyhow::Result<SqliteConnection> {
    if !path.is_file() {
        bail!("{} does not exist or is not a file", path.display());
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(false)
        .read_only(read_only)
        .busy_timeout(Duration::from_secs(30));
    SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("cannot open {} as a SQLite database", path.display()))
}

/// Writes a consistent snapshot of the SQLite database at `source` into `into` (which must not
/// exist or be empty), while other processes keep writing to it.
pub async fn snapshot_sqlite(source: &Path, into: &Path) -> anyhow::Result<()> {
    let mut conn = open(source, false).await?;
    let into_text = into
        .to_str()
        .with_context(|| format!("the path {} is not UTF-8", into.display()))?;
    sqlx::query(VACUUM_INTO)
        .bind(into_text)
        .execute(&mut conn)
        .await
        .with_context(|| format!("VACUUM INTO {} failed", into.display()))?;
    conn.close().await?;
    Ok(())
}

/// Whether the SQLite file at `path` has any table (an empty file, or one SQLite made but nobody
/// used, has none).
pub async fn sqlite_holds_data(path: &Path) -> anyhow::Result<bool> {
    if std::fs::metadata(path).map(|m| m.len()).unwrap_or(0) == 0 {
        return Ok(false);
    }
    let mut conn = open(path, true).await?;
    let tables: i64 = sqlx::query_scalar(ANY_TABLE).fetch_one(&mut conn).await?;
    conn.close().await?;
    Ok(tables > 0)
}

/// Opens the SQLite file at `path` read-only and checks that it is an intact Sealpost database
/// whose migrations this server knows; answers what it holds.
pub async fn inspect_sqlite(path: &Path) -> anyhow::Result<Inspection> {
    let mut conn = open(path, true).await?;
    let check: Vec<String> = sqlx::query_scalar(QUICK_CHECK)
        .fetch_all(&mut conn)
        .await
        .with_context(|| format!("{} is not a SQLite database", path.display()))?;
    if check != ["ok"] {
        bail!(
            "{} is damaged (SQLite's quick_check: {})",
            path.display(),
            check.join("; ")
        );
    }
    let exists = |name: &'static str| sqlx::query_scalar::<_, i64>(TABLE_EXISTS).bind(name);
    for table in ["users", "messages"] {
        if exists(table).fetch_one(&mut conn).await? == 0 {
            bail!(
                "{} is not a Sealpost database (it has no {table} table)",
                path.display()
            );
        }
    }
    let applied: Vec<i64> = if exists("_sqlx_migrations").fetch_one(&mut conn).await? > 0 {
        sqlx::query_scalar(APPLIED).fetch_all(&mut conn).await?
    } else if exists("schema_migrations").fetch_one(&mut conn).await? > 0 {
        sqlx::query_scalar(APPLIED_LEGACY)
            .fetch_all(&mut conn)
            .await?
    } else {
        bail!(
            "{} has no migration ledger: it is not a Sealpost database",
            path.display()
        );
    };
    let known: Vec<i64> = super::migrate::SQLITE.iter().map(|m| m.version).collect();
    if let Some(unknown) = applied.iter().find(|v| !known.contains(v)) {
        bail!(
            "{} has migration {unknown}, which this sealpost does not know: it was made by a \
             newer version; restore it with that version or a later one",
            path.display()
        );
    }
    let missing = known.into_iter().filter(|v| !applied.contains(v)).collect();
    let summary = summary(&mut conn).await?;
    conn.close().await?;
    Ok(Inspection {
        applied,
        missing,
        summary,
    })
}

async fn summary(conn: &mut SqliteConnection) -> anyhow::Result<Summary> {
    let accounts: i64 = sqlx::query_scalar(COUNT_ACCOUNTS)
        .fetch_one(&mut *conn)
        .await?;
    let entries: i64 = sqlx::query_scalar(COUNT_ENTRIES)
        .fetch_one(&mut *conn)
        .await?;
    // Before migration 0005 there is no `entries` column: count rows instead.
    let newest_seq: Vec<MailboxSeq> = match sqlx::query_as(MAILBOX_SEQS).fetch_all(&mut *conn).await
    {
        Ok(rows) => rows,
        Err(_) => {
            sqlx::query_as(MAILBOX_SEQS_COUNTED)
                .fetch_all(&mut *conn)
                .await?
        }
    };
    Ok(Summary {
        accounts,
        mailboxes: newest_seq.len() as i64,
        entries,
        max_seq: newest_seq.iter().map(|m| m.last_seq).max().unwrap_or(0),
        newest_seq,
    })
}

impl Store {
    /// After a restore: raises every mailbox's counter by `margin` (and its version), in one
    /// transaction, and records the restore. Running it again only skips more numbers.
    pub async fn raise_seqs(&self, margin: i64, source: &str, now: i64) -> anyhow::Result<Raised> {
        if margin < 1 {
            bail!("the seq margin must be at least 1");
        }
        let raised = on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let before: i64 = sqlx::query_scalar(MAX_SEQ).fetch_one(&mut *tx).await?;
            if before > SEQ_CEILING - margin {
                bail!("raising the seqs by {margin} would pass {SEQ_CEILING} (the newest seq is {before}): use a smaller --seq-margin");
            }
            let mailboxes = sqlx::query(RAISE_SEQS)
                .bind(margin)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query(RECORD_RESTORE)
                .bind(now)
                .bind(margin)
                .bind(mailboxes as i64)
                .bind(source)
                .execute(&mut *tx)
                .await?;
            let after: i64 = sqlx::query_scalar(MAX_SEQ).fetch_one(&mut *tx).await?;
            tx.commit().await?;
            Raised { mailboxes, seq_margin: margin, max_seq_before: before, max_seq_after: after }
        });
        Ok(raised)
    }

    /// On SQLite, folds the WAL into the database file and removes it (the store must be the
    /// only one open on the file, with a pool of one connection), so that the file can be moved.
    pub async fn checkpoint_into_file(&self) -> anyhow::Result<()> {
        if let super::Db::Sqlite(pool, _) = &self.db {
            let mode: String = sqlx::query_scalar(JOURNAL_DELETE).fetch_one(pool).await?;
            if !mode.eq_ignore_ascii_case("delete") {
                bail!("SQLite kept journal_mode={mode}: is another process using the database?");
            }
        }
        Ok(())
    }
}
