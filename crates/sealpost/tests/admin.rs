//! `sealpost admin` (the real binary) on the database of a real server, on SQLite and
//! PostgreSQL: accounts, sessions and messages are made through the API, the command runs as a
//! process beside the server, and its effects are checked through the API and the database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sealpost_client::api::{LoginRequest, SendRequest};
use sealpost_proto::Secret;
use sealpost_server::store::testing::Value;
use sealpost_testkit::{
    both, ciphertext, hear, hex, random, register_request, Backend, Heard, TestApp, TestUser,
};

const BIN: &str = env!("CARGO_BIN_EXE_sealpost");

/// What a run of the binary said.
#[derive(Debug)]
struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Ran {
    /// Standard output as the one JSON object `--json` promises.
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("not one JSON object ({e}): {self:?}"))
    }

    fn ok(self) -> Ran {
        assert_eq!(self.code, Some(0), "sealpost admin failed: {self:?}");
        self
    }
}

/// Runs `sealpost admin --database <the app's database> <args>`.
async fn admin(app: &TestApp, args: &[&str]) -> Ran {
    let database = app.state.config.database.as_str().to_owned();
    admin_on(&database, args).await
}

async fn admin_on(database: &str, args: &[&str]) -> Ran {
    let database = database.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .arg("admin")
            .arg("--database")
            .arg(database)
            .args(args)
            .env_remove("SEALPOST_DATABASE_URL")
            .env("SEALPOST_LOG", "info")
            .stdin(Stdio::null())
            .output()
            .expect("run sealpost admin")
    })
    .await
    .unwrap();
    Ran {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Sends `k` blocks of ciphertext from one user to another; answers the ciphertext.
async fn send(from: &TestUser, to: &TestUser, k: usize) -> Vec<u8> {
    let ct = ciphertext(k);
    from.api
        .send(&SendRequest {
            to: to.id,
            ciphertext: ct.clone(),
            key_version: 1,
            sender_key_version: 1,
            sender_copy: None,
        })
        .await
        .unwrap();
    ct
}

/// Another session of `user`: (session id, access token, refresh token).
async fn login(app: &TestApp, user: &TestUser) -> (uuid::Uuid, Secret, Secret) {
    let login = app
        .api()
        .login(&LoginRequest {
            email: user.email.clone(),
            auth_key: user.auth_key.clone(),
            device_name: Some("second".into()),
        })
        .await
        .unwrap();
    (login.session_id, login.access_token, login.refresh_token)
}

/// No run printed any of `secrets` (each as base64url and as hex), nor a token.
fn assert_nothing_secret(runs: &[&Ran], ciphertexts: &[Vec<u8>], tokens: &[&Secret]) {
    for run in runs {
        let said = format!("{}{}", run.stdout, run.stderr);
        for ct in ciphertexts {
            let b64 = sealpost_crypto::b64::encode(ct);
            // Any 32 characters of it would do; the whole is the strictest search.
            assert!(
                !said.contains(&b64[..32]),
                "a ciphertext in the output: {said}"
            );
            assert!(
                !said.contains(&hex(&ct[..16])),
                "a ciphertext (hex) in the output: {said}"
            );
        }
        for token in tokens {
            assert!(
                !said.contains(token.expose()),
                "a token in the output: {said}"
            );
        }
    }
}

/// The user's email as an operator might type it: other case, spaces around.
fn typed(email: &str) -> String {
    format!("  {}  ", email.to_uppercase())
}

both!(stats_count_what_was_made, |app: TestApp| async move {
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let carol = app.user("carol").await;
    let dave = app.user("dave").await;
    // Alice has a second session, revoked; Dave's only session has expired; Carol is deleted.
    let (second, _, _) = login(&app, &alice).await;
    alice.api.revoke_session(second).await.unwrap();
    app.sql_execute(
        "UPDATE sessions SET expires_at = 1 WHERE id = $1",
        &[Value::Uuid(dave.session_id)],
    )
    .await;
    carol.api.delete_account(&carol.auth_key).await.unwrap();
    let mut sent = vec![send(&alice, &bob, 1).await, send(&alice, &bob, 2).await];
    sent.push(send(&bob, &alice, 1).await);
    let bytes: usize = sent.iter().map(Vec::len).sum();

    let json = admin(&app, &["--json", "stats"]).await.ok();
    let stats = json.json();
    let backend = match app.backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    assert_eq!(stats["backend"], backend);
    assert_eq!(stats["accounts"]["live"], 3, "{stats}");
    assert_eq!(stats["accounts"]["deleted"], 1, "{stats}");
    assert_eq!(stats["sessions"]["live"], 2, "{stats}");
    assert_eq!(stats["mailboxes"]["entries"], 3, "{stats}");
    assert_eq!(stats["mailboxes"]["ciphertext_bytes"], bytes, "{stats}");
    assert!(stats["database_bytes"].as_i64().unwrap() > 0, "{stats}");
    // `--json` after the command too; the database from the environment, as for `serve`.
    assert_eq!(admin(&app, &["stats", "--json"]).await.ok().json(), stats);
    let database = app.state.config.database.as_str().to_owned();
    let from_env = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["admin", "stats", "--json"])
            .env("SEALPOST_DATABASE_URL", database)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(from_env.status.success(), "{from_env:?}");
    let from_env: serde_json::Value = serde_json::from_slice(&from_env.stdout).unwrap();
    assert_eq!(from_env, stats);

    let plain = admin(&app, &["stats"]).await.ok();
    assert!(plain.stdout.contains("3 live, 1 deleted"), "{plain:?}");
    assert!(plain.stdout.contains("2 live"), "{plain:?}");
    assert!(
        plain
            .stdout
            .contains(&format!("3 ({bytes} bytes of ciphertext")),
        "{plain:?}"
    );
    assert_nothing_secret(
        &[&json, &plain],
        &sent,
        &[&alice.refresh_token, &bob.refresh_token],
    );
});

both!(
    sessions_revoke_ends_every_session_of_the_account,
    |app: TestApp| async move {
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        let (_, phone_token, phone_refresh) = login(&app, &alice).await;
        let sent = vec![send(&bob, &alice, 1).await];
        // On PostgreSQL, a stream of each session, one of them on another node.
        let node_b = match app.backend {
            Backend::Postgres => Some(app.second_node().await),
            Backend::Sqlite => None,
        };
        let mut streams = Vec::new();
        if let Some(node_b) = &node_b {
            streams.push(app.stream(alice.api.token().unwrap(), 1).await);
            streams.push(node_b.stream(&phone_token, 1).await);
        }

        // Each token was checked once, so that a server may hold it in its session cache.
        for token in [alice.api.token().unwrap(), &phone_token] {
            let mut api = app.api();
            api.set_token(Some(token.clone()));
            api.sessions().await.unwrap();
        }

        let run = admin(
            &app,
            &[
                "--json",
                "sessions",
                "revoke",
                "--email",
                &typed(&alice.email),
            ],
        )
        .await
        .ok();
        let answer = run.json();
        assert_eq!(answer["sessions_revoked"], 2, "{answer}");
        assert_eq!(answer["user_id"], alice.id.to_string());
        assert_eq!(answer["email"], alice.email);
        assert_eq!(answer["every_node_told"], app.backend == Backend::Postgres);

        // Both refresh tokens are refused at once; Bob's session is untouched.
        for refresh in [&alice.refresh_token, &phone_refresh] {
            let refused = app.api().refresh(refresh).await.unwrap_err();
            assert_eq!(refused.status(), Some(401), "{refused:?}");
        }
        app.api().refresh(&bob.refresh_token).await.unwrap();
        // On PostgreSQL every node closes the account's streams with 4401 (`hear` waits 10 s).
        for ws in &mut streams {
            assert_eq!(hear(ws).await, Heard::Closed(Some(4401)));
        }
        // The access tokens stop working: at once on PostgreSQL (each node was told), on SQLite once
        // the server's cached answer is older than its 10 s.
        let deadline = Instant::now() + Duration::from_secs(15);
        for token in [alice.api.token().unwrap().clone(), phone_token] {
            let mut api = app.api();
            api.set_token(Some(token));
            loop {
                match api.sessions().await {
                    Err(e) if e.status() == Some(401) => break,
                    other => {
                        assert!(Instant::now() < deadline, "still accepted: {other:?}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }

        // Plain text: nothing left to revoke, and what SQLite cannot do is said.
        let plain = admin(&app, &["sessions", "revoke", "--email", &alice.email])
            .await
            .ok();
        assert!(
            plain.stdout.contains("revoked 0 live sessions"),
            "{plain:?}"
        );
        assert_eq!(
            plain
                .stdout
                .contains("on SQLite a running server is not told"),
            app.backend == Backend::Sqlite,
            "{plain:?}"
        );
        // An unknown email: exit 1, with a clear message (and a JSON error with --json).
        let unknown = admin(
            &app,
            &[
                "--json",
                "sessions",
                "revoke",
                "--email",
                "nobody@example.test",
            ],
        )
        .await;
        assert_eq!(unknown.code, Some(1), "{unknown:?}");
        assert_eq!(unknown.json()["error"]["kind"], "unknown_account");
        assert!(
            unknown
                .stderr
                .contains("no live account has the email nobody@example.test"),
            "{unknown:?}"
        );
        assert_nothing_secret(
            &[&run, &plain, &unknown],
            &sent,
            &[&alice.refresh_token, &phone_refresh],
        );
        if let Some(node_b) = node_b {
            node_b.stop().await;
        }
    }
);

both!(
    account_delete_is_the_deletion_of_section_5,
    |app: TestApp| async move {
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        let sent = vec![
            send(&alice, &bob, 1).await,
            send(&bob, &alice, 1).await,
            send(&bob, &alice, 3).await,
        ];
        let mut streams = Vec::new();
        if app.backend == Backend::Postgres {
            streams.push(app.stream(alice.api.token().unwrap(), 2).await);
        }
        let reason = "abuse report 1234 (spam)";

        let run = admin(
            &app,
            &[
                "--json",
                "account",
                "delete",
                "--email",
                &typed(&alice.email),
                "--reason",
                reason,
            ],
        )
        .await
        .ok();
        let answer = run.json();
        assert_eq!(answer["deleted"], true, "{answer}");
        assert_eq!(answer["user_id"], alice.id.to_string());
        assert_eq!(answer["reason"], reason);
        // Logged with the reason and the user id, never the email.
        assert!(run.stderr.contains(reason), "{run:?}");
        assert!(run.stderr.contains(&alice.id.to_string()), "{run:?}");
        assert!(!run.stderr.contains(&alice.email), "{run:?}");

        // Signing in fails, like for an unknown email; the refresh token is dead.
        let login = app
            .api()
            .login(&LoginRequest {
                email: alice.email.clone(),
                auth_key: alice.auth_key.clone(),
                device_name: None,
            })
            .await
            .unwrap_err();
        assert_eq!(login.status(), Some(401), "{login:?}");
        let refresh = app.api().refresh(&alice.refresh_token).await.unwrap_err();
        assert_eq!(refresh.status(), Some(401), "{refresh:?}");
        for ws in &mut streams {
            assert_eq!(hear(ws).await, Heard::Closed(Some(4401)));
        }
        // Lookups answer 404; the keys stay listable, marked deleted (§5).
        let by_email = bob.api.user_by_email(&alice.email).await.unwrap_err();
        assert_eq!(by_email.status(), Some(404), "{by_email:?}");
        let by_id = bob.api.user(alice.id).await.unwrap_err();
        assert_eq!(by_id.status(), Some(404), "{by_id:?}");
        let keys = bob.api.user_keys(alice.id).await.unwrap();
        assert!(keys.deleted);
        assert_eq!(keys.keys.len(), 1);
        let v1 = bob.api.user_key(alice.id, 1).await.unwrap();
        assert!(v1.deleted);
        // Her mailbox is empty; what she sent stays in Bob's; no secret of hers is left.
        let hers = [Value::Uuid(alice.id)];
        assert_eq!(
            app.sql_scalar("SELECT COUNT(*) FROM messages WHERE mailbox = $1", &hers)
                .await,
            0
        );
        let bobs = [Value::Uuid(bob.id)];
        assert_eq!(
            app.sql_scalar("SELECT COUNT(*) FROM messages WHERE mailbox = $1", &bobs)
                .await,
            1
        );
        assert_eq!(
            app.sql_scalar("SELECT COUNT(*) FROM sessions WHERE user_id = $1", &hers)
                .await,
            0
        );
        assert_eq!(
        app.sql_scalar(
            "SELECT COUNT(*) FROM user_keys WHERE user_id = $1 AND wrapped_secret_key IS NOT NULL",
            &hers
        )
        .await,
        0
    );
        // The email can register again, as a new user.
        let again = app
            .api()
            .register(&register_request(&alice.email, &random(32)))
            .await
            .unwrap();
        assert_ne!(again.user_id, alice.id);

        // The new account is not the one deleted; a deleted one is unknown now (exit 1).
        let plain = admin(
            &app,
            &[
                "account",
                "delete",
                "--email",
                &alice.email,
                "--reason",
                "erasure request",
            ],
        )
        .await
        .ok();
        assert!(
            plain.stdout.contains(&again.user_id.to_string()),
            "{plain:?}"
        );
        assert!(plain.stdout.contains("public keys stay"), "{plain:?}");
        let gone = admin(
            &app,
            &[
                "account",
                "delete",
                "--email",
                &alice.email,
                "--reason",
                "twice",
            ],
        )
        .await;
        assert_eq!(gone.code, Some(1), "{gone:?}");
        assert!(
            gone.stderr.contains("no live account has the email"),
            "{gone:?}"
        );
        // A reason is required (a usage error: 2), and the account is untouched.
        let no_reason = admin(&app, &["account", "delete", "--email", &bob.email]).await;
        assert_eq!(no_reason.code, Some(2), "{no_reason:?}");
        let blank = admin(
            &app,
            &["account", "delete", "--email", &bob.email, "--reason", "  "],
        )
        .await;
        assert_eq!(blank.code, Some(2), "{blank:?}");
        bob.api.sessions().await.unwrap();
        assert_nothing_secret(
            &[&run, &plain, &gone, &no_reason, &blank],
            &sent,
            &[&alice.refresh_token],
        );
    }
);

both!(
    purge_removes_what_serves_no_one_and_keeps_the_rest,
    |app: TestApp| async move {
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        let carol = app.user("carol").await;
        let dave = app.user("dave").await;
        let sent = vec![send(&alice, &dave, 1).await, send(&dave, &alice, 1).await];
        // Alice's session is live and has been refreshed once (a used refresh token, still needed to
        // catch its reuse); Bob's has expired; Carol's is revoked.
        let alice_refresh = app
            .api()
            .refresh(&alice.refresh_token)
            .await
            .unwrap()
            .refresh_token;
        app.sql_execute(
            "UPDATE sessions SET expires_at = 1 WHERE id = $1",
            &[Value::Uuid(bob.session_id)],
        )
        .await;
        carol.api.logout().await.unwrap();
        app.sql_execute(
            "UPDATE sessions SET revoked_at = 1 WHERE id = $1",
            &[Value::Uuid(carol.session_id)],
        )
        .await;
        // Alice's second session was revoked just now: it is kept for the grace period, in case
        // a refresh of it is under way.
        let (second, _, _) = login(&app, &alice).await;
        alice.api.revoke_session(second).await.unwrap();
        // Recovery tokens: one expired, one used, one live.
        let later = i64::MAX / 2;
        for (expires_at, used_at) in [(1, None), (later, Some(2)), (later, None)] {
            let sql = match used_at {
            Some(_) => "INSERT INTO recovery_tokens (hash, user_id, expires_at, used_at) VALUES ($1, $2, $3, $4)",
            None => "INSERT INTO recovery_tokens (hash, user_id, expires_at) VALUES ($1, $2, $3)",
        };
            let mut values = vec![
                Value::Bytes(random(32)),
                Value::Uuid(alice.id),
                Value::Int(expires_at),
            ];
            values.extend(used_at.map(Value::Int));
            app.sql_execute(sql, &values).await;
        }
        // Dave is deleted; something left behind (a session from a login that raced the deletion,
        // a wrapped key) is what §5 says goes.
        dave.api.delete_account(&dave.auth_key).await.unwrap();
        app.sql_execute(
        "INSERT INTO sessions (id, user_id, device_name, created_at, last_used_at, expires_at) \
         VALUES ($1, $2, NULL, 1, 1, $3)",
        &[Value::Uuid(uuid::Uuid::now_v7()), Value::Uuid(dave.id), Value::Int(later)],
    )
    .await;
        app.sql_execute(
            "UPDATE user_keys SET wrapped_secret_key = $1 WHERE user_id = $2",
            &[Value::Bytes(random(72)), Value::Uuid(dave.id)],
        )
        .await;

        let run = admin(&app, &["--json", "purge"]).await.ok();
        let purged = run.json();
        assert_eq!(purged["sessions"], 2, "{purged}");
        assert_eq!(purged["refresh_tokens"], 2, "{purged}");
        assert_eq!(purged["recovery_tokens"], 2, "{purged}");
        assert_eq!(purged["deleted_accounts"]["sessions"], 1, "{purged}");
        assert_eq!(
            purged["deleted_accounts"]["wrapped_secret_keys"], 1,
            "{purged}"
        );
        assert_eq!(purged["deleted_accounts"]["mailbox_entries"], 0, "{purged}");
        assert_eq!(purged["deleted_accounts"]["credentials"], 0, "{purged}");

        // What may still serve stays: Alice's live session (its used token still catches a
        // reuse) and the one revoked within the grace period, her live recovery token, every
        // account row, Dave's public key.
        alice.api.sessions().await.unwrap();
        let rotated = app.api().refresh(&alice_refresh).await.unwrap();
        assert_eq!(
            app.sql_scalar(
                "SELECT COUNT(*) FROM sessions WHERE user_id = $1",
                &[Value::Uuid(alice.id)]
            )
            .await,
            2
        );
        assert_eq!(
            app.sql_scalar("SELECT COUNT(*) FROM recovery_tokens", &[])
                .await,
            1
        );
        assert_eq!(app.sql_scalar("SELECT COUNT(*) FROM users", &[]).await, 4);
        let keys = alice.api.user_keys(dave.id).await.unwrap();
        assert!(keys.deleted);
        assert_eq!(keys.keys.len(), 1);
        // What was purged answers as before: 401.
        for dead in [&bob.refresh_token, &carol.refresh_token] {
            let refused = app.api().refresh(dead).await.unwrap_err();
            assert_eq!(refused.status(), Some(401), "{refused:?}");
        }
        // A reuse of Alice's first token is still caught, after the purge: it revokes her session.
        app.api().refresh(&alice.refresh_token).await.unwrap_err();
        app.api().refresh(&rotated.refresh_token).await.unwrap_err();

        // Plain text: Alice's sessions, both revoked by now, are kept for the grace period...
        let plain = admin(&app, &["purge"]).await.ok();
        assert!(plain.stdout.contains("sessions         0"), "{plain:?}");
        assert!(plain.stdout.contains("recovery tokens  0"), "{plain:?}");
        // ...and purged once it is over: the first with its three refresh tokens.
        app.sql_execute(
            "UPDATE sessions SET revoked_at = 1 WHERE user_id = $1",
            &[Value::Uuid(alice.id)],
        )
        .await;
        let third = admin(&app, &["purge", "--json"]).await.ok().json();
        assert_eq!(third["sessions"], 2, "{third}");
        assert_eq!(third["refresh_tokens"], 4, "{third}");
        assert_eq!(
            app.sql_scalar("SELECT COUNT(*) FROM sessions", &[]).await,
            0
        );
        assert_nothing_secret(
            &[&run, &plain],
            &sent,
            &[&alice.refresh_token, &alice_refresh],
        );
    }
);

both!(
    refuses_a_database_it_does_not_know,
    |app: TestApp| async move {
        // A schema newer than this binary: exit 2, nothing done.
        app.sql_execute(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99999, 'from the future', TRUE, $1, 0)",
        &[Value::Bytes(random(48))],
    )
    .await;
        let alice = app.user("alice").await;
        let newer = admin(
            &app,
            &["--json", "sessions", "revoke", "--email", &alice.email],
        )
        .await;
        assert_eq!(newer.code, Some(2), "{newer:?}");
        assert!(
            newer.stderr.contains("newer than this sealpost"),
            "{newer:?}"
        );
        assert_eq!(newer.json()["error"]["kind"], "database");
        alice.api.sessions().await.unwrap();
        app.api().refresh(&alice.refresh_token).await.unwrap();
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_a_missing_sqlite_file_without_making_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nothing-here.db");
    let run = admin_on(&format!("sqlite://{}", path.display()), &["stats"]).await;
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("cannot use the database"), "{run:?}");
    assert!(!path.exists(), "sealpost admin made a database");
}

#[test]
fn help_says_what_sqlite_cannot_do() {
    let out = Command::new(BIN)
        .args(["admin", "sessions", "revoke", "--help"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(
        help.contains("On SQLite a running server is not told"),
        "{help}"
    );
    let out = Command::new(BIN)
        .args(["admin", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for command in ["stats", "sessions", "account", "purge"] {
        assert!(help.contains(command), "{help}");
    }
}
