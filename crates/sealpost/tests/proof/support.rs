//! What the proofs share: a database on either store, `sealpost serve` as a child process that a
//! test can SIGKILL and start again on the same database and port, accounts made through the
//! SDK's `Api`, and reading a whole mailbox back.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use sealpost_client::api::{Api, Message, Page};
use sealpost_testkit::PgDatabase;
use uuid::Uuid;

pub const BIN: &str = env!("CARGO_BIN_EXE_sealpost");

/// A proof that measures the server's capacity runs alone: it takes this for writing, every
/// other proof for reading.
pub static MACHINE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

/// Which store a proof runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    Sqlite,
    Postgres,
}

/// A database that outlives the server processes run on it: a SQLite file in a temporary
/// directory, or a fresh PostgreSQL database (dropped afterwards) with a secrets file beside it.
pub struct Db {
    pub store: Store,
    /// The SQLite file, the secrets file and the server's log live here.
    pub dir: tempfile::TempDir,
    pub url: String,
    /// Dropped (with the database) after the servers that use it.
    _pg: Option<PgDatabase>,
}

impl Db {
    /// A fresh database, or `None` (said loudly by the test kit) for PostgreSQL when
    /// `SEALPOST_TEST_POSTGRES` is not set.
    pub async fn create(store: Store) -> Option<Db> {
        let dir = tempfile::tempdir().unwrap();
        match store {
            Store::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("proof.db").display());
                Some(Db {
                    store,
                    dir,
                    url,
                    _pg: None,
                })
            }
            Store::Postgres => {
                let pg = PgDatabase::create().await?;
                Some(Db {
                    store,
                    dir,
                    url: pg.url.clone(),
                    _pg: Some(pg),
                })
            }
        }
    }

    /// The SQLite file (`None` on PostgreSQL).
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        (self.store == Store::Sqlite).then(|| self.dir.path().join("proof.db"))
    }

    fn secrets_file(&self) -> PathBuf {
        self.dir.path().join("server.secrets")
    }

    /// Where a server's standard error goes.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }
}

/// How a server is started: the flags beyond the database, the port and the fast test KDF.
#[derive(Debug, Clone, Default)]
pub struct Flags {
    pub extra: Vec<String>,
    /// `--log`; `warn` when not given.
    pub log: Option<String>,
}

impl Flags {
    pub fn new(extra: &[&str]) -> Flags {
        Flags {
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            log: None,
        }
    }
}

/// A `sealpost serve` child process, SIGKILLed when dropped.
pub struct Node {
    child: Child,
    pub base: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Node {
    /// Starts `sealpost serve` on `db` at 127.0.0.1:`port` (its log appended to the
    /// database's log file), and returns once `/healthz` answers.
    pub async fn start(db: &Db, port: u16, flags: &Flags) -> Node {
        let log = File::options()
            .create(true)
            .append(true)
            .open(db.log_path())
            .unwrap();
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .args(["--database", &db.url])
            .args(["--kdf-opslimit", "2", "--kdf-memlimit", "67108864"])
            .args(["--log", flags.log.as_deref().unwrap_or("warn")])
            .args(&flags.extra)
            .env_remove("SEALPOST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if db.store == Store::Postgres {
            command.arg("--secrets-file").arg(db.secrets_file());
        }
        let child = command.spawn().expect("start sealpost serve");
        let mut node = Node {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        node.wait_until_up(db.log_path().as_path()).await;
        node
    }

    async fn wait_until_up(&mut self, log: &Path) {
        let api = Api::new(&self.base);
        let deadline = Instant::now() + Duration::from_secs(60);
        while api.healthz().await.is_err() {
            if let Some(status) = self.child.try_wait().unwrap() {
                let log = std::fs::read_to_string(log).unwrap_or_default();
                panic!("sealpost serve exited with {status} before it answered:\n{log}");
            }
            assert!(Instant::now() < deadline, "{} did not come up", self.base);
            // Polling a process start, not synchronising.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL (what `Child::kill` sends on Unix): no shutdown, no checkpoint, no flush.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        let status = self.child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9),
            "the server was not killed by SIGKILL: {status}"
        );
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A process's resident set size, from /proc.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// An account with well-formed (server-checked) key material, registered and signed in through
/// the SDK's `Api`.
pub struct Account {
    pub id: Uuid,
    pub api: Api,
}

/// An account with a client of its own.
pub async fn account(base: &str, name: &str) -> Account {
    account_via(&Api::new(base), name).await
}

/// An account whose client shares `http`'s connection pool (its clones share it).
pub async fn account_via(http: &Api, name: &str) -> Account {
    let (id, api) = sealpost_testkit::sign_up(http, name).await;
    Account { id, api }
}

/// Every entry of the mailbox, oldest first.
pub async fn mailbox(api: &Api) -> Vec<Message> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = api
            .messages(Page::After {
                after,
                limit: Some(200),
            })
            .await
            .unwrap();
        if page.messages.is_empty() {
            return all;
        }
        after = page.next_after.unwrap();
        all.extend(page.messages);
    }
}

/// Asserts that a mailbox's `seq`s are exactly 1..=n.
pub fn assert_gap_free(entries: &[Message], whose: &str) {
    for (i, entry) in entries.iter().enumerate() {
        assert_eq!(
            entry.seq,
            i as i64 + 1,
            "{whose}'s mailbox has a hole or a repeat at position {i}"
        );
    }
}

/// The `q`-quantile of sorted durations.
pub fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i]
}
