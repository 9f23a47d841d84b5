//! `sealpost backup` and `sealpost restore`: an online snapshot of a SQLite database written
//! atomically beside its destination, and a restore that raises every mailbox's `seq` so that no
//! client is stranded with a cursor past the restored newest entry. The SQL lives in the
//! server's store (`sealpost_server::store::backup`); this module moves files and talks.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context as _};
use clap::Args;
use sealpost_server::config::DatabaseUrl;
use sealpost_server::store::backup::{self as store_backup, Inspection, Raised, Summary};
use sealpost_server::Store;

/// Options of `sealpost backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The database to back up, `sqlite://PATH` (the server may keep running and accepting
    /// sends). A PostgreSQL database is backed up with pg_dump (see docs/OPERATIONS.md).
    #[arg(long, env = "SEALPOST_DATABASE_URL", hide_env_values = true)]
    database: DatabaseUrl,

    /// The backup file to write. It appears only once complete (written beside it, synced, then
    /// renamed).
    #[arg(long, value_name = "FILE")]
    to: PathBuf,

    /// Replace FILE if it exists.
    #[arg(long)]
    force: bool,

    /// Print the summary as JSON on standard output, with each mailbox's newest seq.
    #[arg(long)]
    json: bool,
}

/// Options of `sealpost restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file (made by `sealpost backup`) to restore.
    #[arg(long, value_name = "FILE", required_unless_present = "in_place")]
    from: Option<PathBuf>,

    /// The database to restore into: `sqlite://PATH` with --from; with --in-place, the database
    /// (SQLite or PostgreSQL) that was restored by other means.
    #[arg(long, env = "SEALPOST_DATABASE_URL", hide_env_values = true)]
    database: DatabaseUrl,

    /// Do not copy anything: only raise the seqs of a database restored by other means
    /// (pg_restore, a copied SQLite file), before any server starts on it.
    #[arg(long, conflicts_with_all = ["from", "force"])]
    in_place: bool,

    /// Replace a target database that already holds data (stop every server using it first).
    #[arg(long)]
    force: bool,

    /// How far every mailbox's next seq jumps: more than the entries any mailbox could have
    /// received between the backup and the loss, so that a client that read them resumes with
    /// its old cursor and misses nothing. Skipped numbers stay unused, like a deleted entry's.
    #[arg(long, default_value_t = 1_000_000,
        value_parser = clap::value_parser!(i64).range(1..=1_000_000_000_000))]
    seq_margin: i64,

    /// Print what was done as JSON on standard output.
    #[arg(long)]
    json: bool,
}

/// `sealpost backup` was pointed at PostgreSQL: not an error of the tool, a different tool's job
/// (exit status 2).
#[derive(Debug)]
pub struct UseOtherTool;

impl std::fmt::Display for UseOtherTool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "sealpost backup copies SQLite databases only. Back up PostgreSQL with its own tools:\n  \
             pg_dump -Fc --file sealpost.dump DATABASE_URL      (a consistent dump, taken online)\n  \
             pg_basebackup with WAL archiving                   (for point-in-time recovery)\n\
             After restoring one (pg_restore, or recovery), and before any server starts on it, run\n  \
             sealpost restore --in-place --database DATABASE_URL\n\
             so that clients whose cursors are past the restored data are not stranded.\n\
             docs/OPERATIONS.md shows each step.",
        )
    }
}

impl std::error::Error for UseOtherTool {}

/// The reminder every backup prints: the secrets are not in it.
const SECRETS_REMINDER: &str = "Remember: the server's secrets file (--secrets-file; by default \
     the database's path with .secrets added) is NOT in this backup. Back it up separately, and \
     keep it as private as the database. Without it a restored server makes new secrets, and \
     every session is lost: every user has to log in again (no message is lost).";

fn sqlite_path_of(url: &DatabaseUrl) -> Option<PathBuf> {
    store_backup::sqlite_path(url.as_str())
}

fn is_postgres(url: &DatabaseUrl) -> bool {
    url.as_str().starts_with("postgres:") || url.as_str().starts_with("postgresql:")
}

/// `sealpost backup`.
pub async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    if is_postgres(&args.database) {
        return Err(UseOtherTool.into());
    }
    let Some(source) = sqlite_path_of(&args.database) else {
        bail!("--database must be sqlite://PATH (or a PostgreSQL URL, which pg_dump backs up)");
    };
    if !source.is_file() {
        bail!("there is no database at {}", source.display());
    }
    if same_file(&source, &args.to) {
        bail!("--to names the database itself; write the backup to another file");
    }
    if args.to.exists() && !args.force {
        bail!(
            "{} exists; choose another file or add --force to replace it",
            args.to.display()
        );
    }
    let started = Instant::now();
    let dir = parent_dir(&args.to);
    let temp = tempfile::Builder::new()
        .prefix(".sealpost-backup-")
        .suffix(".partial")
        .tempfile_in(&dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    eprintln!(
        "backing up {} (a consistent snapshot; the server may keep running)…",
        source.display()
    );
    store_backup::snapshot_sqlite(&source, temp.path()).await?;
    temp.as_file()
        .sync_all()
        .context("cannot sync the backup to disk")?;
    eprintln!("checking the copy…");
    let inspection = store_backup::inspect_sqlite(temp.path())
        .await
        .context("the copy does not check out")?;
    let size = temp.as_file().metadata()?.len();
    if args.force {
        temp.persist(&args.to)
    } else {
        temp.persist_noclobber(&args.to)
    }
    .map_err(|e| e.error)
    .with_context(|| format!("cannot move the backup to {}", args.to.display()))?;
    sync_dir(&dir)?;
    let seconds = started.elapsed().as_secs_f64();
    if args.json {
        let report = serde_json::json!({
            "file": args.to.display().to_string(),
            "bytes": size,
            "seconds": seconds,
            "migrations": inspection.applied,
            "summary": inspection.summary,
            "secrets_file_included": false,
        });
        println!("{report}");
    } else {
        println!(
            "backup written: {} ({}, in {seconds:.1} s)",
            args.to.display(),
            human_bytes(size)
        );
        print_summary(&inspection.summary);
    }
    eprintln!("{SECRETS_REMINDER}");
    Ok(())
}

/// `sealpost restore`.
pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    if args.in_place {
        return restore_in_place(&args).await;
    }
    let Some(from) = args.from.as_deref() else {
        bail!("give --from FILE (a backup) or --in-place");
    };
    let Some(target) = sqlite_path_of(&args.database) else {
        bail!(
            "restore --from writes a SQLite database: give --database sqlite://PATH. For \
             PostgreSQL, load a pg_dump with pg_restore, then run sealpost restore --in-place"
        );
    };
    eprintln!("checking {}…", from.display());
    let inspection: Inspection = store_backup::inspect_sqlite(from)
        .await
        .with_context(|| format!("{} cannot be restored", from.display()))?;
    if target.exists()
        && store_backup::sqlite_holds_data(&target)
            .await
            .unwrap_or(true)
    {
        if !args.force {
            bail!(
                "{} already holds a database; stop every server using it and add --force to \
                 replace it, or restore to a new path",
                target.display()
            );
        }
        eprintln!("replacing the database at {} (--force)", target.display());
    }
    let dir = parent_dir(&target);
    let mut temp = tempfile::Builder::new()
        .prefix(".sealpost-restore-")
        .suffix(".partial")
        .tempfile_in(&dir)
        .with_context(|| format!("cannot write in {}", dir.display()))?;
    let mut source = std::fs::File::open(from)?;
    std::io::copy(&mut source, temp.as_file_mut())
        .with_context(|| format!("cannot copy {}", from.display()))?;
    temp.as_file_mut().flush()?;
    temp.as_file().sync_all()?;
    if !inspection.missing.is_empty() {
        eprintln!(
            "the backup is older than this sealpost: applying migrations {:?}",
            inspection.missing
        );
    }
    let url = format!("sqlite://{}", temp.path().display());
    let store = Store::connect(&url, 1).await?;
    let source_note = format!("backup {}", file_name(from));
    let raised = store
        .raise_seqs(args.seq_margin, &source_note, now_ms())
        .await?;
    store.checkpoint_into_file().await?;
    store.close().await;
    for leftover in ["-wal", "-shm"] {
        let companion = with_suffix(temp.path(), leftover);
        if companion.exists() {
            std::fs::remove_file(&companion)
                .with_context(|| format!("cannot remove {}", companion.display()))?;
        }
    }
    temp.as_file().sync_all()?;
    // The target's own WAL and shared memory belong to the database being replaced.
    for leftover in ["-wal", "-shm"] {
        let companion = with_suffix(&target, leftover);
        if companion.exists() {
            std::fs::remove_file(&companion)
                .with_context(|| format!("cannot remove {}", companion.display()))?;
        }
    }
    temp.persist(&target)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot move the database to {}", target.display()))?;
    sync_dir(&dir)?;
    report_restore(&args, &raised, Some(&inspection.summary), &target);
    Ok(())
}

async fn restore_in_place(args: &RestoreArgs) -> anyhow::Result<()> {
    if let Some(path) = sqlite_path_of(&args.database) {
        if !path.is_file() {
            bail!("there is no database at {}", path.display());
        }
    }
    let store = Store::connect(args.database.as_str(), 1).await?;
    let raised = store
        .raise_seqs(args.seq_margin, "in place", now_ms())
        .await?;
    store.close().await;
    report_restore(args, &raised, None, Path::new(""));
    Ok(())
}

fn report_restore(args: &RestoreArgs, raised: &Raised, summary: Option<&Summary>, to: &Path) {
    if args.json {
        let report = serde_json::json!({
            "database": if args.in_place { None } else { Some(to.display().to_string()) },
            "in_place": args.in_place,
            "raised": raised,
            "summary": summary,
        });
        println!("{report}");
        return;
    }
    if !args.in_place {
        println!("restored into {}", to.display());
    }
    if let Some(summary) = summary {
        print_summary(summary);
    }
    println!(
        "raised the next seq of {} mailboxes by {} (newest seq {} → {}); clients resume with \
         their old cursors, and the skipped numbers stay unused",
        raised.mailboxes, raised.seq_margin, raised.max_seq_before, raised.max_seq_after
    );
    println!("recorded in the database's restores table");
}

fn print_summary(s: &Summary) {
    println!(
        "{} accounts, {} mailboxes with entries, {} entries",
        s.accounts, s.mailboxes, s.entries
    );
    println!(
        "newest seq: {} mailboxes, highest {} (per mailbox: --json)",
        s.mailboxes, s.max_seq
    );
}

/// Whether two paths name the same existing file.
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .with_context(|| format!("cannot sync the directory {}", dir.display()))?;
    Ok(())
}

fn human_bytes(n: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    if n as f64 >= MIB {
        format!("{:.1} MiB, {n} bytes", n as f64 / MIB)
    } else {
        format!("{n} bytes")
    }
}

fn now_ms() -> i64 {
    sealpost_server::clock::now_ms()
}
