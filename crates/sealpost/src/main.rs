//! `sealpost`: one command line. `sealpost serve` runs the server; the other commands are the
//! client (`commands`), with its terminal plumbing in `ui`; `sealpost demo` runs both in one
//! process (`demo`); `sealpost admin` is the operator's, on the database directly (`admin`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

mod admin;
mod backup;
mod commands;
mod demo;
mod ui;

/// The server a client talks to when told nothing else.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

#[derive(Debug, Parser)]
#[command(
    name = "sealpost",
    version,
    about = "Sealpost: end-to-end encrypted messaging you run yourself",
    after_help = "The password comes from a prompt that does not echo, or from SEALPOST_PASSWORD \
                  (for scripts); a new one (passwd, recover) from SEALPOST_NEW_PASSWORD, and the \
                  recovery key from SEALPOST_RECOVERY_KEY. Only wrapped keys are stored locally, \
                  so the commands that use them (send, inbox, recovery-key, rotate-keys, \
                  delete-account) ask for the password too. docs/KEYS.md says what each of \
                  passwd, recovery-key, recover, rotate-keys and delete-account does to keys and \
                  sessions."
)]
struct Cli {
    // `--server` and `--home` are the client's, but global (so `serve --help` lists them too):
    // `sealpost --server URL login …` and `sealpost login … --server URL` both keep working.
    /// The server's URL, for `register` and `login` (later commands use the server the local
    /// state names).
    #[arg(long, env = "SEALPOST_SERVER", global = true)]
    server: Option<String>,

    /// Where the local state lives (default: the platform's config directory, e.g.
    /// ~/.config/sealpost). Files there are private to you (mode 0600).
    #[arg(long, env = "SEALPOST_HOME", global = true)]
    home: Option<PathBuf>,

    /// Trust this CA certificate (PEM) for https:// and wss://, and only it (not the web's
    /// roots): for a server whose certificate a private CA signed.
    #[arg(long, env = "SEALPOST_CA_CERT", global = true, value_name = "PEM")]
    ca_cert: Option<PathBuf>,

    /// Allow plain http:// to a server that is not on this machine (loopback always is). The
    /// password's auth key and the session tokens then cross the network readable by anyone on
    /// the way: only for a network you trust.
    #[arg(long, global = true)]
    insecure_http: bool,

    #[command(subcommand)]
    command: Command,
}

/// What `sealpost` can be told to do: run the server, run the demo, or be the client.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (SQLite at ./sealpost.db unless told otherwise).
    Serve(Box<sealpost_server::ServeArgs>),
    /// The client commands, each a subcommand of `sealpost` itself.
    #[command(flatten)]
    Client(ClientCommand),
    /// Run a server in this process, and let Alice write to Bob through it, showing every step.
    Demo,
    /// Copy a live SQLite database into a backup file (a consistent snapshot, written
    /// atomically) and summarise it. PostgreSQL: use pg_dump (exit status 2 says so).
    Backup(backup::BackupArgs),
    /// Restore a backup into a new SQLite database, or (--in-place) prepare a database restored
    /// by other means; either way every mailbox's next seq is raised so no client is stranded.
    Restore(backup::RestoreArgs),
    /// Operate a Sealpost database directly: stats, revoke an account's sessions, delete an
    /// account, purge.
    Admin(Box<admin::AdminArgs>),
}

/// The client's commands (`commands::run`).
#[derive(Debug, Subcommand)]
enum ClientCommand {
    /// Create an account (asks for a new password) and sign in; prints a recovery key once.
    Register {
        email: String,
        /// Do not make a recovery key (a forgotten password then loses every message for good;
        /// `sealpost recovery-key` makes one later).
        #[arg(long)]
        no_recovery_key: bool,
        /// This device's name in `sessions`.
        #[arg(long)]
        device: Option<String>,
    },
    /// Sign in (asks for the password).
    Login {
        email: String,
        /// This device's name in `sessions`.
        #[arg(long)]
        device: Option<String>,
    },
    /// End this session and forget its tokens (pinned contacts stay).
    Logout,
    /// Show who this local state is signed in as.
    Whoami,
    /// Seal and send a message (asks for the password, to unwrap your keys).
    Send {
        /// The recipient's email.
        email: String,
        /// The text, or `-` to read it from standard input.
        text: String,
    },
    /// Show your mailbox, each message opened and checked (asks for the password, to unwrap
    /// your keys).
    Inbox {
        /// One JSON object per line: id, seq, from, to, sent_at, stored_at, text, outgoing (or
        /// error for a message that cannot be shown).
        #[arg(long)]
        json: bool,
        /// Keep going: print new messages as they arrive (reconnecting by itself).
        #[arg(long)]
        follow: bool,
    },
    /// List this account's sessions.
    Sessions,
    /// Show the safety number to compare with a contact (in person or over a call).
    SafetyNumber { email: String },
    /// Accept a contact's new key, after comparing the safety number.
    Trust { email: String },
    /// Change the password (asks for the current one, then the new one twice). Every other
    /// session is signed out; keys and messages stay as they are.
    Passwd,
    /// Make a new recovery key and print it once (the previous one stops working).
    RecoveryKey,
    /// Forgot the password? Set a new one with the recovery key (asked for, then the new password
    /// twice), and sign in. Every session the account had is signed out.
    Recover {
        email: String,
        /// This device's name in `sessions`.
        #[arg(long)]
        device: Option<String>,
    },
    /// Make a new key pair for new messages; older messages still open. Contacts see a key change
    /// and should compare safety numbers again.
    RotateKeys,
    /// Delete the account: the server forgets its email, password, keys, sessions and mailbox
    /// (asks you to type the email to confirm).
    DeleteAccount {
        /// Do not ask for confirmation (for scripts).
        #[arg(long)]
        yes: bool,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => sealpost_server::serve(*args).await,
            Command::Demo => demo::run().await,
            Command::Backup(args) => backup::backup(args).await,
            Command::Restore(args) => backup::restore(args).await,
            Command::Admin(args) => admin::run(*args).await,
            Command::Client(command) => {
                let transport = commands::transport(cli.ca_cert.as_deref(), cli.insecure_http)?;
                let context = commands::Context::new(cli.server, cli.home, transport)?;
                commands::run(context, command).await
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) if error.downcast_ref::<backup::UseOtherTool>().is_some() => {
            eprintln!("{error}");
            std::process::ExitCode::from(2)
        }
        Err(error) => {
            // `sealpost admin` reported its failure itself, and says how to exit.
            if let Some(admin::Exit(code)) = error.downcast_ref() {
                return std::process::ExitCode::from(*code);
            }
            ui::report(&error);
            std::process::ExitCode::FAILURE
        }
    }
}
