//! The real binary facing a hostile server (PROTOCOL 1.1 §6): the client commands run as
//! processes against the test kit's [`EvilProxy`] in front of a real server. Another account
//! behind a pinned email, and an old key version the server makes up, each end the command with
//! a failure that names the problem, with no plaintext in its output and no message sent.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output, Stdio};

use sealpost_crypto::{Payload, PublicKey};
use sealpost_testkit::evil::{user_answer, Accomplice, EvilProxy};
use sealpost_testkit::{Backend, TestApp};
use serde_json::json;
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_sealpost");
const PASSWORD: &str = "correct horse battery staple";

/// A person with a home directory of their own.
struct Person {
    email: String,
    home: tempfile::TempDir,
}

impl Person {
    fn new(name: &str) -> Person {
        Person {
            email: format!("{name}-{}@example.test", Uuid::new_v4().simple()),
            home: tempfile::tempdir().unwrap(),
        }
    }

    /// Runs the CLI against `server` (off the async runtime's threads); its output, whatever the
    /// exit status.
    async fn run(&self, server: &str, args: &[&str]) -> Output {
        let mut command = Command::new(BIN);
        command
            .env("SEALPOST_HOME", self.home.path())
            .env("SEALPOST_SERVER", server)
            .env("SEALPOST_PASSWORD", PASSWORD)
            .stdin(Stdio::null())
            .args(args);
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    async fn ok(&self, server: &str, args: &[&str]) -> String {
        let output = self.run(server, args).await;
        assert!(
            output.status.success(),
            "sealpost {args:?} failed:\n{}",
            text(&output)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// The user id and newest public key in this person's state.
    fn identity(&self) -> (Uuid, PublicKey) {
        let path = self.home.path().join("state.json");
        let state: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(Path::new(&path)).unwrap()).unwrap();
        let account = &state["account"];
        let key = account["keys"].as_array().unwrap().last().unwrap()["public_key"]
            .as_str()
            .unwrap();
        (
            account["user_id"].as_str().unwrap().parse().unwrap(),
            PublicKey::from_base64(key).unwrap(),
        )
    }
}

/// Standard output and error together.
fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_account_behind_a_pinned_email_stops_the_send() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let proxy = EvilProxy::start(&app.base).await;
    let (alice, bob) = (Person::new("alice"), Person::new("bob"));
    alice
        .ok(
            &proxy.base,
            &["register", &alice.email, "--no-recovery-key"],
        )
        .await;
    bob.ok(&app.base, &["register", &bob.email, "--no-recovery-key"])
        .await;
    alice.ok(&proxy.base, &["send", &bob.email, "hello"]).await;
    let sends = proxy.sends();

    // The server answers lookups of Bob's email with an account whose key it holds.
    let mallory = Accomplice::register(&app, "mallory").await;
    let fake = user_answer(mallory.id, &bob.email, 1, &mallory.pair);
    let by_email = bob.email.replace('@', "%40");
    proxy.rewrite(move |req, answer| {
        if req.path == "/v1/users" && req.query.contains(&by_email) {
            answer.body = fake.clone();
        }
    });
    let output = alice
        .run(&proxy.base, &["send", &bob.email, "the secret plan"])
        .await;
    let shown = text(&output);
    assert!(!output.status.success(), "the send succeeded: {shown}");
    assert!(shown.contains("has CHANGED"), "{shown}");
    assert!(shown.contains(&mallory.id.to_string()), "{shown}");
    assert!(
        shown.contains(&format!("sealpost trust {}", bob.email)),
        "{shown}"
    );
    assert!(!shown.contains("the secret plan"), "{shown}");
    // The safety numbers show both: the account trusted, and the one offered.
    let numbers = alice.ok(&proxy.base, &["safety-number", &bob.email]).await;
    assert!(numbers.contains("ANOTHER ACCOUNT"), "{numbers}");
    assert!(numbers.contains(&mallory.id.to_string()), "{numbers}");
    assert_eq!(
        proxy.sends(),
        sends,
        "a message was sealed to the server's key"
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_made_up_old_key_version_fails_the_inbox() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let proxy = EvilProxy::start(&app.base).await;
    let (alice, bob) = (Person::new("alice"), Person::new("bob"));
    bob.ok(&app.base, &["register", &bob.email, "--no-recovery-key"])
        .await;
    bob.ok(&app.base, &["rotate-keys"]).await;
    bob.ok(&app.base, &["rotate-keys"]).await;
    let (bob_id, _) = bob.identity();
    alice
        .ok(
            &proxy.base,
            &["register", &alice.email, "--no-recovery-key"],
        )
        .await;

    // Alice meets Bob while the server hides his first key version from his key list.
    let keys_path = format!("/v1/users/{bob_id}/keys");
    proxy.rewrite(move |req, answer| {
        if req.path == keys_path {
            let keys = answer.body["keys"].as_array_mut().unwrap();
            keys.retain(|k| k["key_version"] != 1);
        }
    });
    alice.ok(&proxy.base, &["safety-number", &bob.email]).await;
    proxy.behave();

    // Then it makes up an entry "from Bob" signed with its own key as his version 1.
    let mallory = Accomplice::register(&app, "mallory").await;
    let (alice_id, alice_key) = alice.identity();
    let payload = Payload::text(bob_id, alice_id, now_ms(), "forged words");
    let ciphertext = sealpost_crypto::seal(&payload, &alice_key, &mallory.pair);
    mallory.post(alice_id, ciphertext).await;
    let from_mallory = mallory.id;
    proxy.rewrite(move |req, answer| {
        if req.path == "/v1/messages" && req.method == "GET" {
            for entry in answer.body["messages"].as_array_mut().unwrap() {
                if entry["from"] == json!(from_mallory) {
                    entry["from"] = json!(bob_id);
                    entry["sender_key_version"] = json!(1);
                }
            }
        }
    });
    let output = alice.run(&proxy.base, &["inbox"]).await;
    let shown = text(&output);
    assert!(!output.status.success(), "{shown}");
    assert!(shown.contains("forged key refused"), "{shown}");
    assert!(shown.contains("refused as forged"), "{shown}");
    assert!(!shown.contains("forged words"), "{shown}");
    let output = alice.run(&proxy.base, &["inbox", "--json"]).await;
    assert!(!output.status.success());
    let line: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(line["error_kind"], "key_forged");
    assert!(!text(&output).contains("forged words"));
    app.stop().await;
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}
