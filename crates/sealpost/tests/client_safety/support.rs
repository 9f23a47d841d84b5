//! People running the CLI binary, each with a home directory of their own, and `sealpost serve`
//! over TLS as a child process.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sealpost_client::{Api, Transport};
use sealpost_testkit::tls::TestCa;

pub const BIN: &str = env!("CARGO_BIN_EXE_sealpost");
pub const PASSWORD: &str = "correct horse battery staple";

/// A person with a home directory of their own, talking to `server`.
pub struct Person {
    pub email: String,
    pub home: tempfile::TempDir,
    pub server: String,
    /// Arguments every command gets (`--ca-cert …`).
    pub extra: Vec<String>,
    /// Environment variables every command gets.
    pub env: Vec<(String, String)>,
}

impl Person {
    pub fn new(name: &str, server: &str, extra: &[&str]) -> Person {
        Person {
            email: format!("{name}-{}@example.test", uuid::Uuid::new_v4().simple()),
            home: tempfile::tempdir().unwrap(),
            server: server.to_owned(),
            extra: extra.iter().map(|s| (*s).to_owned()).collect(),
            env: Vec::new(),
        }
    }

    /// Runs the CLI with `args` (on a blocking thread: the test's server runs on the runtime);
    /// the output, whatever the exit status.
    pub async fn run(&self, args: &[&str]) -> Output {
        let mut command = Command::new(BIN);
        command
            .env("SEALPOST_HOME", self.home.path())
            .env("SEALPOST_SERVER", &self.server)
            .env("SEALPOST_PASSWORD", PASSWORD)
            .env_remove("SEALPOST_CA_CERT")
            .stdin(Stdio::null())
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .args(args)
            .args(&self.extra);
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    /// Runs the CLI with `args` and requires success; its standard output.
    pub async fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args).await;
        assert!(
            output.status.success(),
            "sealpost {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// Registers this person (no recovery key, to keep it short).
    pub async fn register(&self) {
        let out = self
            .ok(&["register", &self.email, "--no-recovery-key"])
            .await;
        assert!(out.contains("Registered"), "{out}");
    }
}

/// `sealpost serve --tls-cert … --tls-key …` as a child process on a free loopback port, over a
/// temporary SQLite file; killed when dropped.
pub struct TlsServer {
    child: Child,
    /// `https://localhost:PORT`.
    pub url: String,
    dir: tempfile::TempDir,
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl TlsServer {
    /// Starts the server with `ca`'s server certificate and waits until `/healthz` answers over
    /// https (checked against `ca`).
    pub async fn start(ca: &TestCa) -> TlsServer {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::fs::File::create(dir.path().join("server.log")).unwrap();
        let child = Command::new(BIN)
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args([
                "--database",
                &format!("sqlite://{}", dir.path().join("tls.db").display()),
            ])
            .arg("--tls-cert")
            .arg(&ca.server_cert)
            .arg("--tls-key")
            .arg(&ca.server_key)
            .args(["--kdf-opslimit", "2", "--kdf-memlimit", "67108864"])
            .env("SEALPOST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start sealpost serve");
        let mut server = TlsServer {
            child,
            url: format!("https://localhost:{port}"),
            dir,
        };
        let api = Api::with_transport(&server.url, &trusting(ca)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while api.healthz().await.is_err() {
            let exited = server.child.try_wait().unwrap();
            if exited.is_some() || Instant::now() > deadline {
                panic!(
                    "sealpost serve over TLS did not come up ({exited:?}):\n{}",
                    server.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        server
    }

    /// What the server logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

/// The SDK's transport trusting `ca` only.
pub fn trusting(ca: &TestCa) -> Transport {
    Transport::new()
        .trust_ca_pem(&std::fs::read(&ca.ca_cert).unwrap())
        .unwrap()
}
