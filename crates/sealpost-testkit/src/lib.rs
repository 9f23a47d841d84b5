//! The test kit every Sealpost test shares (a dev-only crate): [`TestApp`] is a real server,
//! started through [`sealpost_server::Server`] like `sealpost serve`, on 127.0.0.1:0 with its own
//! fresh database (a temporary SQLite file, or a uniquely named PostgreSQL database when
//! `SEALPOST_TEST_POSTGRES` is set, dropped afterwards even when the test panics); [`both!`] runs
//! a test on each backend; and helpers for users, key material, raw SQL and streams.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed step is a failed test"
)]

pub mod evil;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rand_core::{OsRng, RngCore};
use sealpost_client::api::{Api, Kdf, LoginRequest, RegisterRequest};
use sealpost_proto::{Secret, SecretBytes};
use sealpost_server::store::testing::Value;
use sealpost_server::{AppState, RunningServer, ServeArgs, Server, Store};
use uuid::Uuid;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each test on both backends: `both!(name, |app| async move { … })`.
#[macro_export]
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = $crate::TestApp::spawn($crate::Backend::Sqlite).await;
                let Some(app) = app else { return };
                let body = $body;
                body(app.clone()).await;
                app.stop().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let app = $crate::TestApp::spawn($crate::Backend::Postgres).await;
                let Some(app) = app else { return };
                let body = $body;
                body(app.clone()).await;
                app.stop().await;
            }
        }
    };
}

/// A running server and what it runs on.
#[derive(Clone)]
#[allow(missing_debug_implementations, reason = "a test handle")]
pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub backend: Backend,
    pub store: Store,
    pub state: AppState,
    inner: Arc<Inner>,
}

struct Inner {
    server: RunningServer,
    /// Keeps the SQLite file's directory alive.
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL test database, dropped when the last handle on it goes.
    _pg: Option<Arc<PgDatabase>>,
    db_path: Option<std::path::PathBuf>,
}

/// Test defaults: the fast INTERACTIVE kdf limits, port 0.
pub fn test_args() -> ServeArgs {
    let mut args = ServeArgs::defaults();
    args.listen = SocketAddr::from(([127, 0, 0, 1], 0));
    args.kdf_opslimit = 2;
    args.kdf_memlimit = 67_108_864;
    args.db_pool = 8;
    args
}

impl TestApp {
    /// A server on the backend, or `None` (after saying so loudly) when PostgreSQL is not
    /// configured on a machine outside CI.
    pub async fn spawn(backend: Backend) -> Option<TestApp> {
        Self::spawn_with(backend, test_args()).await
    }

    pub async fn spawn_with(backend: Backend, mut args: ServeArgs) -> Option<TestApp> {
        let mut dir = None;
        let mut pg = None;
        let mut db_path = None;
        match backend {
            Backend::Sqlite => {
                let d = tempfile::tempdir().expect("temp dir");
                let path = d.path().join("test.db");
                args.database = format!("sqlite://{}", path.display()).into();
                db_path = Some(path);
                dir = Some(d);
            }
            Backend::Postgres => {
                let db = PgDatabase::create().await?;
                args.database = db.url.clone().into();
                // PostgreSQL has no default place for the server's secrets: give them, as every
                // node of a deployment would be given the same ones.
                if args.secrets_file.is_none() {
                    args.jwt_secret = args.jwt_secret.or_else(|| Some(hex_secret()));
                    args.prelogin_secret = args.prelogin_secret.or_else(|| Some(hex_secret()));
                }
                pg = Some(Arc::new(db));
            }
        }
        Some(Self::start(args, backend, dir, pg, db_path).await)
    }

    /// A server on the database `args` names, as it is (a test that prepared a database itself);
    /// nothing is dropped afterwards.
    pub async fn spawn_with_args(backend: Backend, args: ServeArgs) -> TestApp {
        let db_path = args
            .database
            .as_str()
            .strip_prefix("sqlite://")
            .map(std::path::PathBuf::from);
        Self::start(args, backend, None, None, db_path).await
    }

    async fn start(
        mut args: ServeArgs,
        backend: Backend,
        dir: Option<tempfile::TempDir>,
        pg: Option<Arc<PgDatabase>>,
        db_path: Option<std::path::PathBuf>,
    ) -> TestApp {
        args.listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let server = Server::bind(args)
            .await
            .expect("start a server on the test database")
            .spawn()
            .expect("spawn the server");
        let addr = server.addr();
        let state = server.state().clone();
        TestApp {
            addr,
            base: format!("http://{addr}"),
            backend,
            store: state.store.clone(),
            state,
            inner: Arc::new(Inner {
                server,
                _dir: dir,
                _pg: pg,
                db_path,
            }),
        }
    }

    /// Another node on the same database (PostgreSQL): its own pool, hub and listener.
    pub async fn second_node(&self) -> TestApp {
        let args = (*self.state.config).clone();
        Self::start(args, self.backend, None, self.inner._pg.clone(), None).await
    }

    /// Another node on the same database, with its options changed by `change`.
    pub async fn second_node_with(&self, change: impl FnOnce(&mut ServeArgs)) -> TestApp {
        let mut args = (*self.state.config).clone();
        change(&mut args);
        Self::start(args, self.backend, None, self.inner._pg.clone(), None).await
    }

    /// An API client on this node, signed in as `user` (with the token it got elsewhere).
    pub fn api_for(&self, user: &TestUser) -> Api {
        let mut api = self.api();
        api.set_token(user.api.token().cloned());
        api
    }

    /// A client without a token.
    pub fn api(&self) -> Api {
        Api::new(&self.base)
    }

    /// Where `/metrics` is served, when the server was given `metrics_listen`.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.inner.server.metrics_addr()
    }

    pub fn db_path(&self) -> Option<&std::path::Path> {
        self.inner.db_path.as_deref()
    }

    /// Tells the server to shut down (as SIGTERM would), without waiting.
    pub fn begin_shutdown(&self) {
        self.inner.server.begin_shutdown();
    }

    /// Stops the server and closes its database (a PostgreSQL one is dropped once the last
    /// handle on it goes).
    pub async fn stop(self) {
        let _ = self.inner.server.stop(Duration::from_secs(10)).await;
    }

    /// Runs a raw statement on the server's database (as a malicious operator could); answers the
    /// rows it changed.
    pub async fn sql_execute(&self, sql: &str, values: &[Value]) -> u64 {
        self.store.test_execute(sql, values).await.expect(sql)
    }

    /// Runs a raw query whose answer is one integer.
    pub async fn sql_scalar(&self, sql: &str, values: &[Value]) -> i64 {
        self.store.test_scalar(sql, values).await.expect(sql)
    }

    /// Registers an account with made-up (but well-formed) key material; returns a signed-in
    /// client.
    pub async fn user(&self, name: &str) -> TestUser {
        let email = format!("{name}-{}@example.test", Uuid::new_v4().simple());
        let api = self.api();
        let auth_key = random(32);
        let reg = api
            .register(&register_request(&email, &auth_key))
            .await
            .expect("register");
        let login = api
            .login(&LoginRequest {
                email: email.clone(),
                auth_key: SecretBytes::from_slice(&auth_key),
                device_name: Some("test".into()),
            })
            .await
            .expect("login");
        let mut api = api;
        api.set_token(Some(login.access_token.clone()));
        TestUser {
            id: reg.user_id,
            email,
            auth_key: auth_key.into(),
            api,
            refresh_token: login.refresh_token,
            session_id: login.session_id,
        }
    }
}

/// A registered, signed-in user.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: Uuid,
    pub email: String,
    pub auth_key: SecretBytes,
    pub api: Api,
    pub refresh_token: Secret,
    pub session_id: Uuid,
}

pub fn random(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    OsRng.fill_bytes(&mut v);
    v
}

/// `random(n)` as the SDK's wire types carry secret bytes.
pub fn secret(n: usize) -> SecretBytes {
    SecretBytes::new(random(n))
}

/// Registers and signs in an account with made-up (but well-formed) key material through `api`
/// (a clone of it, so that it shares the connection pool); answers its id and a signed-in client.
pub async fn sign_up(api: &Api, name: &str) -> (Uuid, Api) {
    let email = format!("{name}-{}@example.test", Uuid::new_v4().simple());
    let auth_key = random(32);
    let mut api = api.clone();
    api.set_token(None);
    let reg = api
        .register(&register_request(&email, &auth_key))
        .await
        .expect("register");
    let login = api
        .login(&LoginRequest {
            email,
            auth_key: auth_key.into(),
            device_name: None,
        })
        .await
        .expect("login");
    api.set_token(Some(login.access_token));
    (reg.user_id, api)
}

/// A fresh random 32-byte server secret.
pub fn hex_secret() -> sealpost_server::config::HexSecret {
    let hex: String = random(32).iter().map(|b| format!("{b:02x}")).collect();
    sealpost_server::config::HexSecret::parse(&hex).expect("64 hex digits")
}

/// A real X25519 public key.
pub fn public_key() -> Vec<u8> {
    let mut sk = [0u8; 32];
    OsRng.fill_bytes(&mut sk);
    curve25519_dalek::montgomery::MontgomeryPoint::mul_base_clamped(sk)
        .to_bytes()
        .to_vec()
}

/// An envelope-sized opaque ciphertext (88 + 256·k bytes).
pub fn ciphertext(k: usize) -> Vec<u8> {
    random(88 + 256 * k)
}

pub fn register_request(email: &str, auth_key: &[u8]) -> RegisterRequest {
    RegisterRequest {
        email: email.to_owned(),
        kdf: Kdf {
            alg: "argon2id13".into(),
            salt: random(16),
            opslimit: 2,
            memlimit: 67_108_864,
        },
        auth_key: SecretBytes::from_slice(auth_key),
        wrapped_account_key: random(72).into(),
        public_key: public_key(),
        wrapped_secret_key: random(72),
        recovery: None,
    }
}

/// The admin URL of the test PostgreSQL, if this run has one. In CI it must.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var("SEALPOST_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "SEALPOST_TEST_POSTGRES is not set, but in CI the PostgreSQL suite must run"
            );
            eprintln!("!!! SKIPPED on PostgreSQL: set SEALPOST_TEST_POSTGRES=postgres://postgres@127.0.0.1:5432/postgres to run it");
            None
        }
    }
}

/// The URL of the test NATS server (`SEALPOST_TEST_NATS`, e.g. nats://127.0.0.1:4222), if this
/// run has one. In CI it must.
pub fn nats_url() -> Option<String> {
    match std::env::var("SEALPOST_TEST_NATS") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "SEALPOST_TEST_NATS is not set, but in CI the NATS hub's tests must run"
            );
            eprintln!("!!! SKIPPED with a NATS hub: set SEALPOST_TEST_NATS=nats://127.0.0.1:4222 to run it");
            None
        }
    }
}

/// A NATS subject prefix of one test, so that tests running side by side on one NATS server
/// never hear each other.
pub fn nats_prefix() -> String {
    format!("t{}", Uuid::new_v4().simple())
}

/// Test defaults with the NATS hub under a prefix of the test's own (`None`, said loudly,
/// without `SEALPOST_TEST_NATS`).
pub fn nats_args(poll_ms: u64) -> Option<ServeArgs> {
    let mut args = test_args();
    args.hub = Some(nats_url()?.into());
    args.hub_subject_prefix = nats_prefix();
    args.hub_poll_ms = poll_ms;
    Some(args)
}

/// The admin URL with its database swapped for `name`.
pub fn database_url(admin: &str, name: &str) -> String {
    let (base, query) = match admin.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin, String::new()),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(i) => &base[..scheme_end + i],
        None => base,
    };
    format!("{base}/{name}{query}")
}

/// Runs one statement on the PostgreSQL admin database.
async fn admin_execute(admin: &str, sql: &str) {
    use sqlx::Connection as _;
    let mut conn = sqlx::PgConnection::connect(admin)
        .await
        .expect("connect to SEALPOST_TEST_POSTGRES");
    sqlx::raw_sql(sql).execute(&mut conn).await.expect(sql);
    let _ = conn.close().await;
}

/// A PostgreSQL database of one test, created on the admin URL and dropped on drop, even when
/// the test panicked.
#[derive(Debug)]
pub struct PgDatabase {
    admin: String,
    name: String,
    /// The database's own URL.
    pub url: String,
}

impl PgDatabase {
    /// A fresh, uniquely named database; `None` (said loudly) without `SEALPOST_TEST_POSTGRES`.
    pub async fn create() -> Option<PgDatabase> {
        let admin = postgres_admin_url()?;
        let name = format!("sealpost_test_{}", Uuid::new_v4().simple());
        admin_execute(&admin, &format!("CREATE DATABASE {name}")).await;
        let url = database_url(&admin, &name);
        Some(PgDatabase { admin, name, url })
    }
}

impl PgDatabase {
    /// Ends every `LISTEN` connection to this database (as a network fault would); answers how
    /// many there were.
    pub async fn terminate_listeners(&self) -> i64 {
        use sqlx::Connection as _;
        let mut conn = sqlx::PgConnection::connect(&self.admin)
            .await
            .expect("connect to SEALPOST_TEST_POSTGRES");
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity \
             WHERE datname = $1 AND query ILIKE 'LISTEN%'",
        )
        .bind(&self.name)
        .fetch_one(&mut conn)
        .await
        .expect("terminate the LISTEN connections");
        let _ = conn.close().await;
        n
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        // Drop runs outside any async context we could borrow (and may run while unwinding): a
        // thread of its own with a small runtime does the statement and is waited for.
        let admin = self.admin.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database");
            runtime.block_on(async {
                use sqlx::Connection as _;
                let mut conn = sqlx::PgConnection::connect(&admin).await?;
                sqlx::raw_sql(&sql).execute(&mut conn).await?;
                conn.close().await
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("!!! could not drop the test database {}", self.name);
        }
    }
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What a stream said.
#[derive(Debug, PartialEq)]
pub enum Heard {
    Ready(i64),
    Message(serde_json::Value),
    Closed(Option<u16>),
}

impl TestApp {
    /// Opens `/v1/stream` without authenticating.
    pub async fn ws(&self) -> Ws {
        let url = format!("ws://{}/v1/stream", self.addr);
        tokio_tungstenite::connect_async(url)
            .await
            .expect("websocket")
            .0
    }

    /// Opens `/v1/stream` and authenticates; returns after `ready`.
    pub async fn stream(&self, token: &Secret, after: i64) -> Ws {
        use futures_util::SinkExt as _;
        let mut ws = self.ws().await;
        let auth = serde_json::json!({"type": "auth", "access_token": token, "after": after});
        ws.send(tokio_tungstenite::tungstenite::Message::Text(
            auth.to_string().into(),
        ))
        .await
        .unwrap();
        assert_eq!(hear(&mut ws).await, Heard::Ready(after));
        ws
    }
}

/// The next frame of a stream (pings are skipped), within 10 s.
pub async fn hear<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Heard
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::StreamExt as _;
    use tokio_tungstenite::tungstenite::Message;
    loop {
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), ws.next())
            .await
            .expect("the stream said nothing within 10 s");
        match next {
            None => return Heard::Closed(None),
            Some(Err(_)) => return Heard::Closed(None),
            Some(Ok(Message::Close(frame))) => {
                return Heard::Closed(frame.map(|f| u16::from(f.code)))
            }
            Some(Ok(Message::Text(t))) => {
                let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                match v["type"].as_str() {
                    Some("ready") => return Heard::Ready(v["after"].as_i64().unwrap()),
                    Some("message") => return Heard::Message(v["message"].clone()),
                    other => panic!("unknown frame type {other:?}"),
                }
            }
            Some(Ok(_)) => continue,
        }
    }
}

/// Every row of every table as text (blobs and bytea as lowercase hex), read through SQL.
pub async fn database_text(app: &TestApp) -> String {
    app.store
        .test_dump_text()
        .await
        .expect("dump the test database")
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
