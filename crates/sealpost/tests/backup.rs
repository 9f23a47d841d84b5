//! `sealpost backup` and `sealpost restore`, the real binary against real servers (the test kit's,
//! in this process): a backup taken while sends go on holds every acknowledged one; a restored
//! database serves a client whose cursor is past the backup, with nothing repeated or reused;
//! restore refuses to overwrite; `--in-place` raises seqs on both stores.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use sealpost_client::api::{Page, SendRequest, SendResponse, SenderCopy};
use sealpost_testkit::{both, ciphertext, hear, test_args, Backend, Heard, TestApp, TestUser};
use sqlx::Connection as _;
use uuid::Uuid;

const BIN: &str = env!("CARGO_BIN_EXE_sealpost");

/// Runs the binary off the runtime's threads (the server it talks to runs on them).
async fn sealpost(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(&args)
            .env_remove("SEALPOST_DATABASE_URL")
            .output()
            .expect("run sealpost")
    })
    .await
    .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

async fn send(from: &TestUser, to: Uuid, copy: bool) -> SendResponse {
    let req = SendRequest {
        to,
        ciphertext: ciphertext(1),
        key_version: 1,
        sender_key_version: 1,
        sender_copy: copy.then(|| SenderCopy {
            ciphertext: ciphertext(1),
            key_version: 1,
        }),
    };
    from.api.send(&req).await.expect("send")
}

/// Every entry of the caller's mailbox after `after`, paging forward.
async fn read_after(user: &TestUser, mut after: i64) -> Vec<(Uuid, i64)> {
    let mut all = Vec::new();
    loop {
        let page = user
            .api
            .messages(Page::After {
                after,
                limit: Some(200),
            })
            .await
            .unwrap();
        if page.messages.is_empty() {
            return all;
        }
        for m in &page.messages {
            all.push((m.id, m.seq));
        }
        after = page.next_after.unwrap();
    }
}

/// A read-only connection to a SQLite file.
async fn open_sqlite(path: &Path) -> sqlx::SqliteConnection {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true);
    sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("open the SQLite file")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_backup_under_load_holds_every_acknowledged_send() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let source = app.db_path().unwrap().to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup.db");

    // Three senders, each reporting every acknowledged send (201) as it gets it.
    let stop = Arc::new(AtomicBool::new(false));
    let (acked_tx, mut acked) = tokio::sync::mpsc::unbounded_channel::<SendResponse>();
    let mut senders = Vec::new();
    for i in 0..3 {
        let (alice, bob, stop, acked_tx) = (alice.clone(), bob.id, stop.clone(), acked_tx.clone());
        senders.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                acked_tx.send(send(&alice, bob, i == 0).await).unwrap();
                n += 1;
            }
            n
        }));
    }
    drop(acked_tx);
    let mut before: Vec<SendResponse> = Vec::new();
    while before.len() < 60 {
        before.push(acked.recv().await.unwrap());
    }
    while let Ok(more) = acked.try_recv() {
        before.push(more);
    }

    // The backup begins now: everything in `before` was acknowledged earlier.
    let out = sealpost(vec![
        "backup".into(),
        "--database".into(),
        sqlite_url(&source),
        "--to".into(),
        backup.display().to_string(),
        "--json".into(),
    ])
    .await;
    let sent_during = {
        let mut n = 0;
        while let Ok(_more) = acked.try_recv() {
            n += 1;
        }
        n
    };
    stop.store(true, Ordering::SeqCst);
    for s in senders {
        s.await.unwrap();
    }
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("secrets file") && stderr.contains("log in again"),
        "{stderr}"
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json");
    assert_eq!(
        report["bytes"].as_u64().unwrap(),
        std::fs::metadata(&backup).unwrap().len()
    );
    eprintln!(
        "{} sends acknowledged before the backup, {sent_during} while it ran",
        before.len()
    );

    // A valid database holding every send acknowledged before the backup began…
    let mut db = open_sqlite(&backup).await;
    let check: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut db)
        .await
        .unwrap();
    assert_eq!(check, "ok");
    let ids: HashSet<Uuid> = sqlx::query_scalar("SELECT id FROM messages")
        .fetch_all(&mut db)
        .await
        .unwrap()
        .into_iter()
        .collect();
    for sent in &before {
        assert!(
            ids.contains(&sent.id),
            "acknowledged send {} is missing",
            sent.id
        );
    }
    // …and consistent: each mailbox's counter is its newest entry (no half-made batch), and the
    // summary says so.
    let rows: Vec<(Uuid, i64, i64, i64)> = sqlx::query_as(
        "SELECT id, last_seq, entries, (SELECT COALESCE(MAX(seq), 0) FROM messages m \
         WHERE m.mailbox = users.id) FROM users",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    for (id, last_seq, entries, newest) in &rows {
        assert_eq!(last_seq, newest, "mailbox {id}");
        let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE mailbox = $1")
            .bind(id)
            .fetch_one(&mut db)
            .await
            .unwrap();
        assert_eq!(*entries, count, "mailbox {id}");
    }
    let bob_last = rows.iter().find(|r| r.0 == bob.id).unwrap().1;
    assert!(bob_last >= before.iter().map(|s| s.seq).max().unwrap());
    assert_eq!(
        report["summary"]["entries"].as_i64().unwrap(),
        ids.len() as i64
    );
    assert_eq!(report["summary"]["accounts"], 2);
    let per_mailbox = report["summary"]["newest_seq"].as_array().unwrap();
    let bob_row = per_mailbox
        .iter()
        .find(|m| m["mailbox"] == bob.id.to_string())
        .expect("bob's mailbox in the summary");
    assert_eq!(bob_row["last_seq"].as_i64().unwrap(), bob_last);
    db.close().await.unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&backup).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the backup is as private as the database");
    }
    // No temporary file is left beside it.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["backup.db"]);

    // A second backup to the same file is refused without --force, and made with it.
    let again = |force: bool| {
        let mut args = vec![
            "backup".to_owned(),
            "--database".into(),
            sqlite_url(&source),
            "--to".into(),
            backup.display().to_string(),
        ];
        if force {
            args.push("--force".into());
        }
        sealpost(args)
    };
    // Nor is the database itself ever the destination, even with --force.
    let onto_itself = sealpost(vec![
        "backup".into(),
        "--database".into(),
        sqlite_url(&source),
        "--to".into(),
        source.display().to_string(),
        "--force".into(),
    ])
    .await;
    assert!(!onto_itself.status.success());
    assert!(
        text(&onto_itself).contains("the database itself"),
        "{}",
        text(&onto_itself)
    );
    let refused = again(false).await;
    assert!(!refused.status.success());
    assert!(text(&refused).contains("--force"), "{}", text(&refused));
    let forced = again(true).await;
    assert!(forced.status.success(), "{}", text(&forced));
    assert!(String::from_utf8_lossy(&forced.stdout).contains("entries"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_database_serves_clients_that_read_past_the_backup() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    let source = app.db_path().unwrap().to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup.db");

    let mut seen: HashMap<i64, Uuid> = HashMap::new();
    for _ in 0..5 {
        let s = send(&alice, bob.id, true).await;
        seen.insert(s.seq, s.id);
    }
    let out = sealpost(vec![
        "backup".into(),
        "--database".into(),
        sqlite_url(&source),
        "--to".into(),
        backup.display().to_string(),
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out));
    // Bob reads what came after the backup: his cursor is now past anything the backup holds.
    for _ in 0..3 {
        let s = send(&alice, bob.id, true).await;
        seen.insert(s.seq, s.id);
    }
    let read = read_after(&bob, 0).await;
    assert_eq!(read.len(), 8);
    let cursor = read.last().unwrap().1;
    assert_eq!(cursor, 8);
    // The disk dies. Only the backup and the secrets file (backed up on its own) are left.
    let secrets = PathBuf::from(format!("{}.secrets", source.display()));
    let secrets_copy = std::fs::read(&secrets).expect("the server's secrets file");
    app.stop().await;

    let restored_dir = tempfile::tempdir().unwrap();
    let restored = restored_dir.path().join("restored.db");
    let secrets_restored = PathBuf::from(format!("{}.secrets", restored.display()));
    std::fs::write(&secrets_restored, &secrets_copy).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&secrets_restored, std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    let out = sealpost(vec![
        "restore".into(),
        "--from".into(),
        backup.display().to_string(),
        "--database".into(),
        sqlite_url(&restored),
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("raised the next seq"), "{said}");
    assert!(said.contains("1000000"), "{said}");

    let mut args = test_args();
    args.database = sqlite_url(&restored).into();
    let app = TestApp::spawn_with_args(Backend::Sqlite, args).await;
    assert_eq!(
        app.sql_scalar("SELECT COUNT(*) FROM restores", &[]).await,
        1
    );
    let alice = TestUser {
        api: app.api_for(&alice),
        ..alice
    };
    let bob = TestUser {
        api: app.api_for(&bob),
        ..bob
    };
    // What the backup held is there, unchanged.
    let kept = read_after(&bob, 0).await;
    assert_eq!(kept.len(), 5);
    for (id, seq) in &kept {
        assert_eq!(seen.get(seq), Some(id));
    }
    // Bob resumes with his old cursor, on the stream and by paging.
    let mut stream = app.stream(bob.api.token().unwrap(), cursor).await;
    let mut new = Vec::new();
    for _ in 0..3 {
        new.push(send(&alice, bob.id, true).await);
    }
    for sent in &new {
        assert!(sent.seq > cursor, "seq {} is not past the cursor", sent.seq);
        assert!(!seen.contains_key(&sent.seq), "seq {} reused", sent.seq);
        match hear(&mut stream).await {
            Heard::Message(m) => {
                assert_eq!(m["id"], sent.id.to_string());
                assert_eq!(m["seq"], sent.seq);
            }
            other => panic!("expected a message, heard {other:?}"),
        }
    }
    let paged = read_after(&bob, cursor).await;
    assert_eq!(
        paged,
        new.iter().map(|s| (s.id, s.seq)).collect::<Vec<_>>(),
        "exactly the new messages, once each"
    );
    // Alice's own mailbox (her sender copies) moved on as well.
    let alice_new = read_after(&alice, 8).await;
    assert_eq!(alice_new.len(), 3);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_refuses_what_it_should() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    send(&alice, bob.id, false).await;
    let source = app.db_path().unwrap().to_path_buf();
    let dir = tempfile::tempdir().unwrap();
    let backup = dir.path().join("backup.db");
    let out = sealpost(vec![
        "backup".into(),
        "--database".into(),
        sqlite_url(&source),
        "--to".into(),
        backup.display().to_string(),
    ])
    .await;
    assert!(out.status.success(), "{}", text(&out));
    app.stop().await;

    let restore = |from: &Path, to: &Path, force: bool| {
        let mut args = vec![
            "restore".to_owned(),
            "--from".into(),
            from.display().to_string(),
            "--database".into(),
            sqlite_url(to),
        ];
        if force {
            args.push("--force".into());
        }
        sealpost(args)
    };
    // A target that holds a database is kept as it is without --force.
    let target = dir.path().join("live.db");
    let out = restore(&backup, &target, false).await;
    assert!(out.status.success(), "{}", text(&out));
    let before = std::fs::read(&target).unwrap();
    let out = restore(&backup, &target, false).await;
    assert!(!out.status.success());
    assert!(
        text(&out).contains("already holds a database"),
        "{}",
        text(&out)
    );
    assert_eq!(
        std::fs::read(&target).unwrap(),
        before,
        "the target is untouched"
    );
    let out = restore(&backup, &target, true).await;
    assert!(out.status.success(), "{}", text(&out));
    // An empty file is not data: it is restored into.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    let out = restore(&backup, &empty, false).await;
    assert!(out.status.success(), "{}", text(&out));

    // Something that is not a Sealpost backup is refused, with a reason.
    let junk = dir.path().join("junk.db");
    std::fs::write(&junk, b"this is not a database").unwrap();
    let out = restore(&junk, &dir.path().join("new1.db"), false).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("cannot be restored"), "{}", text(&out));
    let missing = restore(
        &dir.path().join("nope.db"),
        &dir.path().join("new2.db"),
        false,
    )
    .await;
    assert!(!missing.status.success());
    assert!(
        text(&missing).contains("does not exist"),
        "{}",
        text(&missing)
    );
    assert!(!dir.path().join("new1.db").exists());
    assert!(!dir.path().join("new2.db").exists());

    // A backup made by a newer sealpost (a migration this one does not know) is refused.
    let newer = dir.path().join("newer.db");
    std::fs::copy(&backup, &newer).unwrap();
    {
        let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&newer);
        let mut db = sqlx::SqliteConnection::connect_with(&options)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES (9999, 'from the future', TRUE, x'00', 0)",
        )
        .execute(&mut db)
        .await
        .unwrap();
        db.close().await.unwrap();
    }
    let out = restore(&newer, &dir.path().join("new3.db"), false).await;
    assert!(!out.status.success());
    assert!(text(&out).contains("newer version"), "{}", text(&out));

    // PostgreSQL is pg_dump's job: exit status 2, and what to do instead.
    let out = sealpost(vec![
        "backup".into(),
        "--database".into(),
        "postgres://sealpost@db.invalid/sealpost".into(),
        "--to".into(),
        dir.path().join("pg.db").display().to_string(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let said = text(&out);
    for needle in [
        "pg_dump",
        "pg_basebackup",
        "restore --in-place",
        "docs/OPERATIONS.md",
    ] {
        assert!(said.contains(needle), "{needle}: {said}");
    }
    // --from writes SQLite only.
    let out = sealpost(vec![
        "restore".into(),
        "--from".into(),
        backup.display().to_string(),
        "--database".into(),
        "postgres://sealpost@db.invalid/sealpost".into(),
    ])
    .await;
    assert!(!out.status.success());
    assert!(text(&out).contains("pg_restore"), "{}", text(&out));
}

// `--in-place` on a database restored by other means (pg_restore, a copied file): every mailbox's
// next seq jumps by the margin and its version moves; a second run skips more numbers.
both!(
    in_place_raises_every_mailbox_seq,
    |app: TestApp| async move {
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        for _ in 0..3 {
            send(&alice, bob.id, true).await;
        }
        let url = app.state.config.database.as_str().to_owned();
        let rev = |id: Uuid| {
            let app = app.clone();
            async move {
                app.sql_scalar(
                    "SELECT mailbox_rev FROM users WHERE id = $1",
                    &[sealpost_server::store::testing::Value::Uuid(id)],
                )
                .await
            }
        };
        let rev_before = rev(bob.id).await;
        let in_place = |margin: &str| {
            sealpost(vec![
                "restore".into(),
                "--in-place".into(),
                "--database".into(),
                url.clone(),
                "--seq-margin".into(),
                margin.into(),
                "--json".into(),
            ])
        };
        let out = in_place("1000").await;
        assert!(out.status.success(), "{}", text(&out));
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("--json");
        assert_eq!(report["raised"]["seq_margin"], 1000);
        assert_eq!(report["raised"]["max_seq_before"], 3);
        assert_eq!(report["raised"]["max_seq_after"], 1003);
        assert!(report["raised"]["mailboxes"].as_u64().unwrap() >= 2);
        assert!(rev(bob.id).await > rev_before);
        assert_eq!(send(&alice, bob.id, true).await.seq, 1004);
        assert_eq!(
            read_after(&alice, 3).await.len(),
            1,
            "the sender copy, at 1004"
        );

        let out = in_place("10").await;
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(send(&alice, bob.id, false).await.seq, 1015);
        assert_eq!(
            app.sql_scalar(
                "SELECT COUNT(*) FROM restores WHERE source = 'in place'",
                &[]
            )
            .await,
            2
        );
        let read = read_after(&bob, 0).await;
        let seqs: Vec<i64> = read.iter().map(|r| r.1).collect();
        assert_eq!(seqs, [1, 2, 3, 1004, 1015]);

        // A bad margin is refused by the parser, before anything is touched.
        let out = in_place("0").await;
        assert!(!out.status.success());
        assert_eq!(send(&alice, bob.id, false).await.seq, 1016);
    }
);
