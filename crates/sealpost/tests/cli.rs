//! The real binary against a real server: `sealpost serve` (the same binary) on a free port over a
//! temporary SQLite file, and the client commands run as processes with two `SEALPOST_HOME`
//! directories; and `sealpost demo`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_sealpost");
const PASSWORD: &str = "correct horse battery staple";

/// A `sealpost serve` child, killed when dropped.
struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `sealpost serve` on 127.0.0.1:0 and reads the address it bound from its log.
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let database = format!("sqlite://{}", dir.path().join("cli.db").display());
        let mut child = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", "--database", &database])
            .args(["--kdf-opslimit", "2", "--kdf-memlimit", "67108864"])
            .env("SEALPOST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start sealpost serve");
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if let Some(rest) = line.split("address=").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                    let _ = tx.send(addr);
                }
                // Keep draining, so that the server never blocks on a full pipe.
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the server did not say where it listens");
        Server {
            child,
            url: format!("http://{addr}"),
            _dir: dir,
        }
    }
}

/// A person with a home directory of their own.
struct Person {
    email: String,
    home: tempfile::TempDir,
}

impl Person {
    fn new(name: &str) -> Person {
        Person {
            email: format!("{name}-{}@example.test", uuid::Uuid::new_v4().simple()),
            home: tempfile::tempdir().unwrap(),
        }
    }

    fn command(&self, server: &str) -> Command {
        let mut command = Command::new(BIN);
        command
            .env("SEALPOST_HOME", self.home.path())
            .env("SEALPOST_SERVER", server)
            .env("SEALPOST_PASSWORD", PASSWORD)
            .stdin(Stdio::null());
        command
    }

    /// Runs the CLI with `args`; the output, whatever the exit status.
    fn run(&self, server: &str, args: &[&str]) -> Output {
        self.command(server).args(args).output().unwrap()
    }

    /// Runs the CLI with `args` and requires success; its standard output.
    fn ok(&self, server: &str, args: &[&str]) -> String {
        let output = self.run(server, args);
        assert!(
            output.status.success(),
            "sealpost {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }
}

fn json_lines(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn two_people_talk_through_a_real_server() {
    let server = Server::start();
    let url = server.url.as_str();
    let alice = Person::new("alice");
    let bob = Person::new("bob");

    let out = alice.ok(url, &["register", &alice.email]);
    assert!(out.contains("Registered"), "{out}");
    // The recovery key, once: 14 groups of 4.
    let recovery = out
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 69 && l.matches('-').count() == 13)
        .unwrap_or_else(|| panic!("no recovery key in {out}"));
    assert!(sealpost_like_recovery(recovery));
    bob.ok(url, &["register", &bob.email, "--no-recovery-key"]);

    // Local state: private files, no password.
    let state: PathBuf = alice.home.path().join("state.json");
    let text = std::fs::read_to_string(&state).unwrap();
    assert!(!text.contains(PASSWORD) && !text.contains(recovery));
    #[cfg(unix)]
    {
        assert_eq!(mode(&state), 0o600);
        assert_eq!(mode(alice.home.path()), 0o700);
    }

    let out = alice.ok(url, &["send", &bob.email, "Hello, Bob!"]);
    assert!(out.contains("Sent to"), "{out}");
    let mut stdin_send = alice.command(url);
    stdin_send
        .args(["send", &bob.email, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = stdin_send.spawn().unwrap();
    {
        use std::io::Write as _;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"from stdin\n")
            .unwrap();
    }
    assert!(child.wait_with_output().unwrap().status.success());

    let lines = json_lines(&bob.ok(url, &["inbox", "--json"]));
    assert_eq!(lines.len(), 2, "{lines:?}");
    let first = &lines[0];
    assert_eq!(first["seq"], 1);
    assert_eq!(first["from"], alice.email.as_str());
    assert_eq!(first["to"], bob.email.as_str());
    assert_eq!(first["text"], "Hello, Bob!");
    assert_eq!(first["outgoing"], false);
    assert!(uuid::Uuid::parse_str(first["id"].as_str().unwrap()).is_ok());
    let sent_at = first["sent_at"].as_str().unwrap();
    assert!(
        sent_at.len() >= 20 && sent_at.ends_with('Z') && sent_at.contains('T'),
        "{sent_at}"
    );
    assert_eq!(lines[1]["text"], "from stdin");
    assert_eq!(lines[1]["seq"], 2);

    // Alice's sender copies.
    let mine = json_lines(&alice.ok(url, &["inbox", "--json"]));
    assert_eq!(mine.len(), 2);
    assert_eq!(mine[0]["outgoing"], true);
    assert_eq!(mine[0]["to"], bob.email.as_str());
    assert_eq!(mine[0]["text"], "Hello, Bob!");

    // The human form shows who, when and what.
    let human = bob.ok(url, &["inbox"]);
    assert!(
        human.contains(&alice.email) && human.contains("Hello, Bob!"),
        "{human}"
    );

    // The same safety number on both sides.
    let number = |text: &str| -> String {
        text.lines()
            .map(str::trim)
            .find(|l| l.len() == 71 && l.split(' ').count() == 12)
            .unwrap_or_else(|| panic!("no safety number in {text}"))
            .to_owned()
    };
    let a = number(&alice.ok(url, &["safety-number", &bob.email]));
    let b = number(&bob.ok(url, &["safety-number", &alice.email]));
    assert_eq!(a, b);

    let who = bob.ok(url, &["whoami"]);
    assert!(
        who.contains(&bob.email) && who.contains("signed in"),
        "{who}"
    );
    let sessions = bob.ok(url, &["sessions"]);
    assert!(sessions.contains("sealpost CLI"), "{sessions}");

    // Clear errors.
    let wrong = bob
        .command(url)
        .env("SEALPOST_PASSWORD", "not the password")
        .args(["inbox"])
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("wrong password"));
    let unknown = alice.run(url, &["send", "nobody@example.test", "hi"]);
    assert!(!unknown.status.success());
    assert!(
        String::from_utf8_lossy(&unknown.stderr).contains("unknown user: nobody@example.test"),
        "{}",
        String::from_utf8_lossy(&unknown.stderr)
    );
    let nobody = Person::new("carol");
    let down = nobody.run("http://127.0.0.1:9", &["login", &nobody.email]);
    assert!(!down.status.success());
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert!(
        stderr.contains("cannot reach the server at http://127.0.0.1:9"),
        "{stderr}"
    );

    let out = bob.ok(url, &["logout"]);
    assert!(out.contains("Signed out"));
    let after = bob.run(url, &["sessions"]);
    assert!(!after.status.success());
    assert!(String::from_utf8_lossy(&after.stderr).contains("signed out"));
}

/// 56 symbols of Crockford base32.
fn sealpost_like_recovery(text: &str) -> bool {
    let symbols: String = text.chars().filter(|c| *c != '-').collect();
    symbols.len() == 56
        && symbols
            .chars()
            .all(|c| "0123456789ABCDEFGHJKMNPQRSTVWXYZ".contains(c))
}

#[test]
fn inbox_follow_prints_messages_as_they_arrive() {
    let server = Server::start();
    let url = server.url.as_str();
    let alice = Person::new("alice");
    let bob = Person::new("bob");
    alice.ok(url, &["register", &alice.email, "--no-recovery-key"]);
    bob.ok(url, &["register", &bob.email, "--no-recovery-key"]);
    alice.ok(url, &["send", &bob.email, "before"]);

    let mut follow = bob
        .command(url)
        .args(["inbox", "--json", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let next = || -> serde_json::Value {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("inbox --follow printed nothing");
        serde_json::from_str(&line).unwrap()
    };
    let first = next();
    assert_eq!(
        (first["seq"].as_i64(), first["text"].as_str()),
        (Some(1), Some("before"))
    );
    alice.ok(url, &["send", &bob.email, "live"]);
    let second = next();
    assert_eq!(
        (second["seq"].as_i64(), second["text"].as_str()),
        (Some(2), Some("live"))
    );
    assert_eq!(second["from"], alice.email.as_str());
    let _ = follow.kill();
    let _ = follow.wait();
}

#[test]
fn a_key_change_is_a_loud_warning_until_trusted() {
    let server = Server::start();
    let url = server.url.as_str();
    let alice = Person::new("alice");
    let bob = Person::new("bob");
    alice.ok(url, &["register", &alice.email, "--no-recovery-key"]);
    bob.ok(url, &["register", &bob.email, "--no-recovery-key"]);
    alice.ok(url, &["send", &bob.email, "first"]);
    // Bob makes a new key pair: for Alice, a newer key version is a key change until she trusts
    // it. (A pinned version that comes back with another key is a forgery instead, which no
    // trust accepts: tests/evil.rs.)
    bob.ok(url, &["rotate-keys"]);

    let numbers = alice.ok(url, &["safety-number", &bob.email]);
    assert!(numbers.contains("ANOTHER key"), "{numbers}");
    // From then on the CLI refuses to send, loudly, until she trusts.
    let refused = alice.run(url, &["send", &bob.email, "second"]);
    assert!(!refused.status.success());
    assert_key_change_warning(&refused, &bob.email);
    alice.ok(url, &["trust", &bob.email]);
    alice.ok(url, &["send", &bob.email, "second"]);
}

fn assert_key_change_warning(output: &Output, email: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("WARNING") && stderr.contains("CHANGED"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("sealpost trust {email}")),
        "{stderr}"
    );
}

/// Runs `command` with `input` on its standard input.
fn with_stdin(mut command: Command, input: &str) -> Output {
    use std::io::Write as _;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// The texts of `inbox --json`, in order.
fn texts(inbox: &str) -> Vec<String> {
    json_lines(inbox)
        .iter()
        .map(|l| l["text"].as_str().unwrap_or("(cannot be shown)").to_owned())
        .collect()
}

fn failed(output: &Output, expected: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "succeeded: {stderr}");
    assert!(stderr.contains(expected), "{stderr}");
}

#[test]
fn the_key_lifecycle_through_the_real_binary() {
    const NEW: &str = "a brand new password";
    let server = Server::start();
    let url = server.url.as_str();
    let alice = Person::new("alice");
    let bob = Person::new("bob");
    let out = alice.ok(url, &["register", &alice.email]);
    assert!(out.contains("gone for good"), "{out}");
    let recovery = out
        .lines()
        .map(str::trim)
        .find(|l| l.len() == 69 && l.matches('-').count() == 13)
        .unwrap_or_else(|| panic!("no recovery key in {out}"))
        .to_owned();
    let out = bob.ok(url, &["register", &bob.email, "--no-recovery-key"]);
    assert!(
        out.contains("No recovery key") && out.contains("gone for good"),
        "{out}"
    );
    alice.ok(url, &["send", &bob.email, "one"]);
    bob.ok(url, &["send", &alice.email, "two"]);
    // Bob's commands with his new password, once he has it.
    let bob_new = |args: &[&str]| -> Output {
        bob.command(url)
            .env("SEALPOST_PASSWORD", NEW)
            .args(args)
            .output()
            .unwrap()
    };

    // passwd: the current password is checked; the new one opens every message.
    let wrong = bob
        .command(url)
        .env("SEALPOST_PASSWORD", "not the password")
        .env("SEALPOST_NEW_PASSWORD", NEW)
        .arg("passwd")
        .output()
        .unwrap();
    failed(&wrong, "wrong password");
    let changed = bob
        .command(url)
        .env("SEALPOST_NEW_PASSWORD", NEW)
        .arg("passwd")
        .output()
        .unwrap();
    assert!(changed.status.success(), "{changed:?}");
    assert!(String::from_utf8_lossy(&changed.stdout).contains("Changed the password"));
    failed(&bob.run(url, &["inbox"]), "wrong password");
    let inbox = bob_new(&["inbox", "--json"]);
    assert!(inbox.status.success(), "{inbox:?}");
    assert_eq!(
        texts(&String::from_utf8_lossy(&inbox.stdout)),
        ["one", "two"]
    );

    // recover: Alice forgets her password and sets a new one on another device.
    let phone = Person {
        email: alice.email.clone(),
        home: tempfile::tempdir().unwrap(),
    };
    let recover = |key: &str| -> Output {
        phone
            .command(url)
            .env("SEALPOST_RECOVERY_KEY", key)
            .env("SEALPOST_NEW_PASSWORD", NEW)
            .args(["recover", &alice.email])
            .output()
            .unwrap()
    };
    let mut typo: Vec<char> = recovery.chars().collect();
    typo[0] = if typo[0] == 'A' { 'B' } else { 'A' };
    failed(&recover(&typo.into_iter().collect::<String>()), "typo");
    let recovered = recover(&recovery);
    assert!(recovered.status.success(), "{recovered:?}");
    assert!(String::from_utf8_lossy(&recovered.stdout).contains("Set a new password"));
    let alice_new = |args: &[&str]| -> Output {
        phone
            .command(url)
            .env("SEALPOST_PASSWORD", NEW)
            .args(args)
            .output()
            .unwrap()
    };
    let inbox = alice_new(&["inbox", "--json"]);
    assert!(inbox.status.success(), "{inbox:?}");
    assert_eq!(
        texts(&String::from_utf8_lossy(&inbox.stdout)),
        ["one", "two"]
    );
    // Her first device was signed out by the recovery.
    failed(&alice.run(url, &["inbox"]), "signed out");

    // rotate-keys: Bob's new key pair. Alice still holds his old key: her send is refused by
    // the server as stale and shown as a key change, until she trusts the new key.
    let rotated = bob_new(&["rotate-keys"]);
    assert!(rotated.status.success(), "{rotated:?}");
    assert!(String::from_utf8_lossy(&rotated.stdout).contains("version 2"));
    let refused = alice_new(&["send", &bob.email, "three"]);
    assert!(!refused.status.success());
    assert_key_change_warning(&refused, &bob.email);
    assert!(alice_new(&["trust", &bob.email]).status.success());
    assert!(alice_new(&["send", &bob.email, "three"]).status.success());
    let inbox = bob_new(&["inbox", "--json"]);
    assert_eq!(
        texts(&String::from_utf8_lossy(&inbox.stdout)),
        ["one", "two", "three"]
    );

    // delete-account: typing anything but the email keeps the account.
    let mut delete = phone.command(url);
    delete.env("SEALPOST_PASSWORD", NEW).arg("delete-account");
    failed(&with_stdin(delete, "someone@else.test\n"), "not deleted");
    let mut delete = phone.command(url);
    delete.env("SEALPOST_PASSWORD", NEW).arg("delete-account");
    let deleted = with_stdin(delete, &format!("{}\n", alice.email.to_uppercase()));
    assert!(deleted.status.success(), "{deleted:?}");
    assert!(String::from_utf8_lossy(&deleted.stdout).contains("Deleted"));
    failed(&alice_new(&["whoami"]), "no account");
    // What she sent still opens for Bob; nothing more can be sent to her.
    let inbox = bob_new(&["inbox", "--json"]);
    assert_eq!(
        texts(&String::from_utf8_lossy(&inbox.stdout)),
        ["one", "two", "three"]
    );
    failed(&bob_new(&["send", &alice.email, "hello?"]), "unknown user");

    // The address registers again, as a new user; and `--yes` deletes without asking.
    let again = Person {
        email: alice.email.clone(),
        home: tempfile::tempdir().unwrap(),
    };
    again.ok(url, &["register", &alice.email, "--no-recovery-key"]);
    let out = again.ok(url, &["delete-account", "--yes"]);
    assert!(out.contains("Deleted"), "{out}");
}

#[test]
fn demo_exits_zero_and_shows_the_decrypted_text() {
    let output = Command::new(BIN).arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("from alice@example.com: \"Hello, Bob!\""),
        "{stdout}"
    );
    assert!(stdout.contains("not found"), "{stdout}");
    assert!(!stdout.contains("FOUND"), "{stdout}");
    assert!(stdout.contains("ciphertext:"), "{stdout}");
}
