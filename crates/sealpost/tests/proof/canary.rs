//! The dump canary: an account made, used, rotated and re-passworded through the real SDK against
//! `sealpost serve --log debug`; then the database as it lies on disk (the SQLite file with its
//! -wal and -shm) or as `pg_dump` writes it, and the server's whole log, are searched byte by byte
//! for the plaintext, the passwords, the recovery key, the wrap, auth and account keys, every
//! secret key and every token, in every form of `scan::Canary`: none may be there
//! (ARCHITECTURE.md: the server never sees a plaintext, a password, a wrap key or an unwrapped
//! secret key; no secret in a log line; credentials stored only as hashes). So that the scan is
//! not blind, the stored ciphertext and the email must be found in the database.

use std::process::Command;
use std::sync::Arc;

use sealpost_client::api::{Api, Page};
use sealpost_client::keystore::AccountRecord;
use sealpost_client::{Client, Keystore as _, MemoryKeystore, RegisterOptions};
use sealpost_crypto::{derive, AccountKey, RecoveryKey};
use uuid::Uuid;

use crate::scan::{scan, Canary, Hit};
use crate::support::{free_port, Db, Flags, Node, Store, MACHINE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_files_and_debug_logs_hold_no_secret() {
    dump_canary(Store::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dump_and_debug_logs_hold_no_secret() {
    dump_canary(Store::Postgres).await;
}

async fn dump_canary(store: Store) {
    let _machine = MACHINE.read().await;
    let Some(db) = Db::create(store).await else {
        return;
    };
    let flags = Flags {
        extra: Vec::new(),
        log: Some("debug".into()),
    };
    let node = Node::start(&db, free_port(), &flags).await;

    let tag = Uuid::new_v4().simple().to_string();
    let password = format!("canary-password-{tag}");
    let new_password = format!("canary-new-password-{tag}");
    let body = format!("canary-plaintext-{tag}");
    let email = format!("canary-{tag}@example.test");
    let bob_email = format!("canary-bob-{tag}@example.test");
    let bob_password = format!("canary-bob-password-{tag}");

    let alice_keys = Arc::new(MemoryKeystore::new());
    let alice = Client::new(&node.base, alice_keys.clone());
    let registration = alice
        .register(
            &email,
            &password,
            RegisterOptions {
                recovery_key: true,
                device_name: Some("canary".into()),
            },
        )
        .await
        .unwrap();
    let bob_keys = Arc::new(MemoryKeystore::new());
    let bob = Client::new(&node.base, bob_keys.clone());
    bob.register(&bob_email, &bob_password, RegisterOptions::default())
        .await
        .unwrap();

    let mut canaries = vec![Canary::text("the plaintext", &body)];
    let recovery_text = registration.recovery_key.unwrap();
    let recovery = RecoveryKey::parse(&recovery_text).unwrap();
    canaries.extend([
        Canary::text("the recovery key's text", &recovery_text),
        Canary::bytes("the recovery key", recovery.expose_secret()),
        Canary::bytes("the recovery wrap key", recovery.wrap_key().expose_secret()),
        Canary::bytes("the recovery auth key", recovery.auth_key().expose_secret()),
    ]);
    let first = record(&alice_keys);
    canaries.extend(account_canaries("alice", &password, &first));
    canaries.extend(session_canaries("alice at registration", &first));
    let bob_record = record(&bob_keys);
    canaries.extend(account_canaries("bob", &bob_password, &bob_record));
    canaries.extend(session_canaries("bob", &bob_record));

    alice.send(bob_email.as_str(), &body).await.unwrap();
    let received = bob.fetch_all(0).await.unwrap();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].message.as_ref().unwrap().text, body);
    assert_eq!(alice.rotate_keys().await.unwrap(), 2);
    canaries.extend(session_canaries(
        "alice after rotation",
        &record(&alice_keys),
    ));
    alice
        .change_password(&password, &new_password)
        .await
        .unwrap();
    let last = record(&alice_keys);
    assert_eq!(last.keys.len(), 2);
    assert_ne!(last.kdf.salt, first.kdf.salt);
    canaries.extend(account_canaries(
        "alice re-passworded",
        &new_password,
        &last,
    ));
    canaries.extend(session_canaries("alice re-passworded", &last));
    // A refresh through the API (the last call on this session: the SDK's copy is now spent).
    let refreshed = Api::new(&node.base)
        .refresh(&last.session.as_ref().unwrap().refresh_token)
        .await
        .unwrap();
    canaries.extend([
        Canary::text("a refreshed access token", refreshed.access_token.expose()),
        Canary::text(
            "a refreshed refresh token",
            refreshed.refresh_token.expose(),
        ),
    ]);

    // What must be there: the ciphertext as bob's mailbox serves it, and the email.
    let mut bob_api = Api::new(&node.base);
    bob_api.set_token(Some(
        record(&bob_keys).session.unwrap().access_token.clone(),
    ));
    let page = bob_api.messages(Page::default()).await.unwrap();
    let controls = [
        Canary::bytes("the stored ciphertext", &page.messages[0].ciphertext),
        Canary::text("the email", &email),
    ];

    // SIGKILL: the -wal and -shm stay on disk as a crash would leave them.
    node.kill();
    let mut database = Vec::new();
    match db.sqlite_path() {
        Some(path) => {
            for suffix in ["", "-wal", "-shm"] {
                let file = format!("{}{suffix}", path.display());
                let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{file}: {e}"));
                assert!(!bytes.is_empty(), "{file} is empty");
                database.push((format!("proof.db{suffix}"), bytes));
            }
        }
        None => database.push(("pg_dump".to_owned(), pg_dump(&db.url))),
    }
    let log = std::fs::read(db.log_path()).unwrap();
    assert!(
        memchr::memmem::find(&log, b"DEBUG").is_some(),
        "the server did not log at debug"
    );

    let mut artefacts = database.clone();
    artefacts.push(("the server's log".to_owned(), log.clone()));
    let mut hits: Vec<Hit> = Vec::new();
    let mut looked = 0;
    let mut scanned_bytes = 0;
    for (name, bytes) in &artefacts {
        let (found, n) = scan(name, bytes, &canaries);
        hits.extend(found);
        looked += n;
        scanned_bytes += bytes.len();
    }
    let hits: Vec<String> = hits.iter().map(Hit::to_string).collect();
    assert!(hits.is_empty(), "secrets found:\n{}", hits.join("\n"));

    let database_bytes: Vec<u8> = database.iter().flat_map(|(_, b)| b.clone()).collect();
    for control in &controls {
        let (found, _) = scan(
            "the database",
            &database_bytes,
            std::slice::from_ref(control),
        );
        assert!(!found.is_empty(), "{} is not in the database", control.name);
        let (in_log, _) = scan("the log", &log, std::slice::from_ref(control));
        assert!(in_log.is_empty(), "{} is in the server's log", control.name);
        eprintln!(
            "PROOF canary {store:?}: control {} found as {:?}",
            control.name,
            found.iter().map(|h| h.form).collect::<Vec<_>>()
        );
    }
    eprintln!(
        "PROOF canary {store:?}: {} canaries, {looked} (canary, form, artefact) searches over \
         {} artefacts ({scanned_bytes} bytes, log {} bytes): 0 hits",
        canaries.len(),
        artefacts.len(),
        log.len()
    );
}

fn record(keystore: &MemoryKeystore) -> AccountRecord {
    keystore.load().unwrap().account.unwrap()
}

/// The secrets behind an account record, derived again from its password and salt: the
/// password, the wrap and auth keys, the account key and every secret key.
fn account_canaries(who: &str, password: &str, account: &AccountRecord) -> Vec<Canary> {
    let (wrap_key, auth_key) = derive(password, &account.kdf).unwrap();
    let account_key = AccountKey::unwrap(&account.wrapped_account_key, &wrap_key).unwrap();
    let mut canaries = vec![
        Canary::text(format!("{who}'s password"), password),
        Canary::bytes(format!("{who}'s wrap key"), wrap_key.expose_secret()),
        Canary::bytes(format!("{who}'s auth key"), auth_key.expose_secret()),
        Canary::bytes(format!("{who}'s account key"), account_key.expose_secret()),
    ];
    for key in &account.keys {
        let secret = account_key
            .unwrap_secret_key(&key.wrapped_secret_key)
            .unwrap();
        canaries.push(Canary::bytes(
            format!("{who}'s secret key v{}", key.key_version),
            secret.expose_secret(),
        ));
    }
    canaries
}

/// The session's raw tokens.
fn session_canaries(who: &str, account: &AccountRecord) -> Vec<Canary> {
    let session = account.session.as_ref().unwrap();
    vec![
        Canary::text(
            format!("{who}: access token"),
            session.access_token.expose(),
        ),
        Canary::text(
            format!("{who}: refresh token"),
            session.refresh_token.expose(),
        ),
    ]
}

/// `pg_dump` of the database, in plain format.
fn pg_dump(url: &str) -> Vec<u8> {
    let out = Command::new("pg_dump")
        .args(["--format=plain", "--no-owner", url])
        .output()
        .expect("run pg_dump");
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
