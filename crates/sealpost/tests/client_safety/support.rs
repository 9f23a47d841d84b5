//! People running the CLI binary, each with a home directory of their own.

use std::process::{Command, Output, Stdio};

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
