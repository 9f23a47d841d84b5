//! `sealpost admin`: the operator's commands, run on the database directly beside the running
//! servers (`stats`, `sessions revoke`, `account delete`, `purge`). Each answers in plain text, or
//! with `--json` in one JSON object; each prints counts, ids and emails (what the server already
//! knows), never a ciphertext, a key, a hash or a token.
//!
//! Exit status: 0 done, 1 no live account has that email, 2 a usage or database error (clap's
//! own usage errors exit 2 as well).

use std::fmt;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use sealpost_server::config::DatabaseUrl;
use sealpost_server::store::admin::{Purged, Stats};
use sealpost_server::store::Backend;
use sealpost_server::Store;
use serde_json::json;

/// What a running server on SQLite still believes after `sessions revoke` or `account delete`:
/// it cannot hear another process, so it learns from the database when it next reads it.
const SQLITE_NOTE: &str = "on SQLite a running server is not told: refreshing fails at once, an \
     access token it already checked keeps working for up to 10 s (its session cache), and a \
     stream already open stays open until its access token expires (--access-token-ttl, 15 \
     minutes by default); restart the server to end them at once";

/// Options of `sealpost admin`.
#[derive(Debug, Args)]
#[command(
    after_help = "Runs beside the servers, on the database they use; it never creates or migrates \
                  one, and refuses one whose schema is not this binary's. Prints counts, ids and \
                  emails, never a ciphertext, key, hash or token. Exit status: 0 done, 1 no live \
                  account has that email, 2 a usage or database error."
)]
pub struct AdminArgs {
    /// The servers' database: `sqlite://PATH` (it must exist) or `postgres://…`.
    #[arg(
        long,
        env = "SEALPOST_DATABASE_URL",
        default_value = "sqlite://sealpost.db",
        hide_env_values = true,
        global = true
    )]
    database: DatabaseUrl,

    /// Answer with one JSON object on standard output (an error too, as {"error":{…}}).
    #[arg(long, global = true)]
    json: bool,

    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Count accounts (live, deleted), live sessions, mailbox entries and the bytes of
    /// ciphertext they hold, and the database's size.
    Stats,
    /// An account's sessions.
    Sessions {
        #[command(subcommand)]
        command: SessionsCommand,
    },
    /// An account.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Delete what serves no one: sessions that expired or were revoked over 10 minutes ago, with
    /// their refresh tokens; used or expired recovery tokens; and whatever a deleted account still
    /// holds beyond its user id and public keys (those stay, PROTOCOL §5). In small batches,
    /// beside a running server.
    Purge,
}

#[derive(Debug, Subcommand)]
enum SessionsCommand {
    /// Revoke every session of an account; prints how many were live. On PostgreSQL every node
    /// closes their streams at once (4401). On SQLite a running server is not told: refreshing
    /// fails at once, an access token it already checked works for up to 10 s more, and an open
    /// stream stays open until its access token expires; restart the server to end them at once.
    Revoke {
        /// The account's email.
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, Subcommand)]
enum AccountCommand {
    /// Delete an account as its owner would (PROTOCOL §5): its email, password, wrapped keys,
    /// recovery key, sessions and mailbox go, in one transaction; its user id and public keys
    /// stay, marked deleted, so that what it sent still verifies. Logged with the reason. Asks
    /// nothing: it is done when it returns. (The SQLite caveat of `sessions revoke` applies to
    /// its sessions.)
    Delete {
        /// The account's email.
        #[arg(long)]
        email: String,
        /// Why (abuse, an erasure request…): written to the log with the user id.
        #[arg(long, value_parser = not_blank)]
        reason: String,
    },
}

fn not_blank(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("give a reason (it goes to the log)".to_owned());
    }
    Ok(text.to_owned())
}

/// A failure already reported to the operator; `main` exits with its status.
#[derive(Debug)]
pub struct Exit(pub u8);

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sealpost admin failed (exit status {})", self.0)
    }
}

impl std::error::Error for Exit {}

/// Why a command failed.
enum Failure {
    /// No live account has the email: exit 1.
    UnknownAccount(String),
    /// The database could not be opened, is not this binary's schema, or failed: exit 2.
    Database(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Database(e)
    }
}

impl From<sqlx::Error> for Failure {
    fn from(e: sqlx::Error) -> Self {
        Failure::Database(e.into())
    }
}

/// Runs `sealpost admin`; an `Err` is an [`Exit`], already reported.
pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    init_log();
    let json = args.json;
    match execute(args).await {
        Ok(()) => Ok(()),
        Err(failure) => {
            let (code, kind, message) = match &failure {
                Failure::UnknownAccount(email) => (
                    1,
                    "unknown_account",
                    format!("no live account has the email {email}"),
                ),
                Failure::Database(e) => (2, "database", format!("{e:#}")),
            };
            eprintln!("error: {message}");
            if json {
                println!(
                    "{}",
                    json!({"error": {"kind": kind, "message": message, "exit": code}})
                );
            }
            Err(Exit(code).into())
        }
    }
}

/// Logs go to standard error (SEALPOST_LOG, default `info`); answers to standard output.
fn init_log() {
    let filter = std::env::var("SEALPOST_LOG").unwrap_or_else(|_| "info".to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{filter},sqlx=warn"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,sqlx=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

async fn execute(args: AdminArgs) -> Result<(), Failure> {
    let store = Store::open_existing(args.database.as_str())
        .await
        .context("cannot use the database")?;
    let result = command(&store, args.command, args.json).await;
    store.close().await;
    result
}

async fn command(store: &Store, command: AdminCommand, json: bool) -> Result<(), Failure> {
    let backend = store.backend();
    let now = now_ms();
    match command {
        AdminCommand::Stats => {
            let stats = store.stats(now).await?;
            print_stats(backend, &stats, json);
        }
        AdminCommand::Sessions {
            command: SessionsCommand::Revoke { email },
        } => {
            let (email, user_id) = live_account(store, &email).await?;
            let revoked = store.revoke_user_sessions(user_id, now).await?;
            tracing::info!(%user_id, revoked, "an operator revoked every session of an account");
            if json {
                let mut answer = account_answer(backend, &email, user_id);
                answer["sessions_revoked"] = json!(revoked);
                println!("{answer}");
            } else {
                println!(
                    "revoked {revoked} live session{} of {email} (user {user_id})",
                    plural(revoked)
                );
                println!("{}", told(backend));
            }
        }
        AdminCommand::Account {
            command: AccountCommand::Delete { email, reason },
        } => {
            let (email, user_id) = live_account(store, &email).await?;
            if !store.delete_account(user_id, now).await? {
                // Deleted by its owner (or another operator) between the two statements.
                return Err(Failure::UnknownAccount(email));
            }
            tracing::warn!(%user_id, reason = ?reason, "an operator deleted an account");
            if json {
                let mut answer = account_answer(backend, &email, user_id);
                answer["deleted"] = json!(true);
                answer["reason"] = json!(reason);
                println!("{answer}");
            } else {
                println!("deleted the account {email} (user {user_id}), reason: {reason}");
                println!(
                    "its email, password, wrapped keys, recovery key, sessions and mailbox are \
                     gone; its user id and public keys stay, marked deleted (PROTOCOL §5), and \
                     the email can register again as a new user"
                );
                println!("{}", told(backend));
            }
        }
        AdminCommand::Purge => {
            let purged = store.purge(now).await?;
            tracing::info!(
                sessions = purged.sessions,
                refresh_tokens = purged.refresh_tokens,
                recovery_tokens = purged.recovery_tokens,
                "an operator purged the database"
            );
            print_purged(backend, &purged, json);
        }
    }
    Ok(())
}

/// The live account an operator named (its email normalised as the server stores it).
async fn live_account(store: &Store, email: &str) -> Result<(String, uuid::Uuid), Failure> {
    let email = normalise(email);
    match store.live_user_id(&email).await? {
        Some(user_id) => Ok((email, user_id)),
        None => Err(Failure::UnknownAccount(email)),
    }
}

/// What every answer about one account says with `--json`, revocation's reach included.
fn account_answer(backend: Backend, email: &str, user_id: uuid::Uuid) -> serde_json::Value {
    let postgres = backend == Backend::Postgres;
    json!({
        "backend": backend.name(),
        "user_id": user_id,
        "email": email,
        "every_node_told": postgres,
        "note": (!postgres).then_some(SQLITE_NOTE),
    })
}

/// Who hears of a revocation made here.
fn told(backend: Backend) -> &'static str {
    match backend {
        Backend::Postgres => "every node closes the account's streams now (4401)",
        Backend::Sqlite => SQLITE_NOTE,
    }
}

fn print_stats(backend: Backend, s: &Stats, json: bool) {
    if json {
        println!(
            "{}",
            json!({
                "backend": backend.name(),
                "accounts": {"live": s.accounts_live, "deleted": s.accounts_deleted},
                "sessions": {"live": s.sessions_live},
                "mailboxes": {"entries": s.mailbox_entries, "ciphertext_bytes": s.ciphertext_bytes},
                "database_bytes": s.database_bytes,
            })
        );
        return;
    }
    println!("backend          {}", backend.name());
    println!(
        "accounts         {} live, {} deleted",
        s.accounts_live, s.accounts_deleted
    );
    println!("sessions         {} live", s.sessions_live);
    println!(
        "mailbox entries  {} ({} bytes of ciphertext{})",
        s.mailbox_entries,
        s.ciphertext_bytes,
        human(s.ciphertext_bytes)
    );
    println!(
        "database         {} bytes{}",
        s.database_bytes,
        human(s.database_bytes)
    );
}

fn print_purged(backend: Backend, p: &Purged, json: bool) {
    let d = &p.deleted_accounts;
    if json {
        println!(
            "{}",
            json!({
                "backend": backend.name(),
                "sessions": p.sessions,
                "refresh_tokens": p.refresh_tokens,
                "recovery_tokens": p.recovery_tokens,
                "deleted_accounts": {
                    "sessions": d.sessions,
                    "refresh_tokens": d.refresh_tokens,
                    "recovery_tokens": d.recovery_tokens,
                    "mailbox_entries": d.mailbox_entries,
                    "wrapped_secret_keys": d.wrapped_secret_keys,
                    "credentials": d.credentials,
                },
            })
        );
        return;
    }
    println!("purged ({})", backend.name());
    println!(
        "  sessions         {} (expired or revoked over 10 minutes ago)",
        p.sessions
    );
    println!(
        "  refresh tokens   {} (of those sessions)",
        p.refresh_tokens
    );
    println!("  recovery tokens  {} (used or expired)", p.recovery_tokens);
    println!(
        "  deleted accounts' leftovers: {} sessions, {} refresh tokens, {} recovery tokens, {} \
         mailbox entries, {} wrapped secret keys, {} credentials",
        d.sessions,
        d.refresh_tokens,
        d.recovery_tokens,
        d.mailbox_entries,
        d.wrapped_secret_keys,
        d.credentials
    );
    println!("kept: every deleted account's user id and public keys (PROTOCOL §5)");
}

/// PROTOCOL §1: trimmed, ASCII letters lowercased, as the server stores emails.
fn normalise(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// Bytes in binary units for people, after the exact count (nothing below 1 KiB).
fn human(bytes: i64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    match unit.checked_sub(1).and_then(|u| UNITS.get(u)) {
        Some(name) => format!(", {value:.1} {name}"),
        None => String::new(),
    }
}

/// Now, in Unix milliseconds, as the store keeps times.
fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}
