//! What storage holds: ciphertext only. A message with a unique canary is sealed for real and
//! sent; then the SQLite file (and its write-ahead log) and every table's text are searched for
//! the canary.

use sealpost_client::api::{LoginRequest, Page, SecretBytes, SendRequest};
use sealpost_crypto::{KeyPair, Payload};

use crate::both;
use crate::helpers::*;

async fn real_user(app: &TestApp, name: &str, keys: &KeyPair) -> TestUser {
    let email = format!("{name}-{}@example.test", uuid::Uuid::new_v4().simple());
    let auth_key = random(32);
    let mut req = register_request(&email, &auth_key);
    req.public_key = keys.public().as_bytes().to_vec();
    let reg = app.api().register(&req).await.unwrap();
    let login = app
        .api()
        .login(&LoginRequest {
            email: email.clone(),
            auth_key: SecretBytes::from_slice(&auth_key),
            device_name: None,
        })
        .await
        .unwrap();
    let mut api = app.api();
    api.set_token(Some(login.access_token));
    TestUser {
        id: reg.user_id,
        email,
        auth_key: auth_key.into(),
        api,
        refresh_token: login.refresh_token,
        session_id: login.session_id,
    }
}

both!(storage_holds_no_plaintext, |app: TestApp| async move {
    let (alice_keys, bob_keys) = (KeyPair::generate(), KeyPair::generate());
    let alice = real_user(&app, "alice", &alice_keys).await;
    let bob = real_user(&app, "bob", &bob_keys).await;
    let canary = format!("canary-{}", uuid::Uuid::new_v4().simple());
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as u64 * 1000;
    let payload = Payload::text(alice.id, bob.id, now, format!("Hello, Bob! {canary}"));
    let ciphertext = sealpost_crypto::seal(&payload, bob_keys.public(), &alice_keys);
    let copy = sealpost_crypto::seal_sender_copy(&payload, &alice_keys);
    let req = SendRequest {
        to: bob.id,
        ciphertext,
        key_version: 1,
        sender_key_version: 1,
        sender_copy: Some(sealpost_client::api::SenderCopy {
            ciphertext: copy,
            key_version: 1,
        }),
    };
    alice.api.send(&req).await.unwrap();
    // The message is really there, and really opens for Bob.
    let entry = &bob.api.messages(Page::default()).await.unwrap().messages[0];
    let opened = sealpost_crypto::open(
        &entry.ciphertext,
        &bob_keys,
        bob.id,
        alice.id,
        alice_keys.public(),
        now,
    )
    .unwrap();
    assert!(opened.body.contains(&canary));
    // Nothing in storage shows it, in text or in hex.
    let text = database_text(&app).await;
    assert!(
        text.contains(&hex(&entry.ciphertext)),
        "the scan does not see the stored rows"
    );
    for needle in [canary.clone(), hex(canary.as_bytes())] {
        assert!(!text.contains(&needle), "a table holds the plaintext");
    }
    if let Some(path) = app.db_path() {
        let mut files = vec![std::fs::read(path).unwrap()];
        if let Ok(wal) = std::fs::read(path.with_extension("db-wal")) {
            files.push(wal);
        }
        let total: usize = files.iter().map(Vec::len).sum();
        assert!(total > 0);
        for bytes in files {
            assert!(
                !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
                "the SQLite file holds the plaintext"
            );
        }
    }
});

/// Every place a copy of the SQLite database lives on disk: the file and its companions.
fn database_files(path: &std::path::Path) -> Vec<std::path::PathBuf> {
    ["", "-wal", "-shm"]
        .iter()
        .map(|suffix| std::path::PathBuf::from(format!("{}{suffix}", path.display())))
        .filter(|p| p.exists())
        .collect()
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_and_the_secrets_are_private_and_apart() {
    let app = TestApp::spawn(Backend::Sqlite).await.unwrap();
    let alice = app.user("alice").await;
    let path = app.db_path().unwrap().to_owned();
    let secrets_file = std::path::PathBuf::from(format!("{}.secrets", path.display()));
    // Readable by the server's user only: the database, its WAL and shared memory, the secrets.
    #[cfg(unix)]
    for file in database_files(&path).iter().chain([&secrets_file]) {
        assert_eq!(mode(file), 0o600, "{} is not private", file.display());
    }
    // The database holds no secret of the server's: not in a table, not in its bytes.
    let secrets: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&secrets_file).unwrap()).unwrap();
    let jwt_hex = secrets["jwt"].as_str().unwrap().to_owned();
    let jwt: Vec<u8> = (0..jwt_hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&jwt_hex[i..i + 2], 16).unwrap())
        .collect();
    assert_eq!(jwt.len(), 32);
    assert!(app.store.legacy_secrets().await.unwrap().is_empty());
    let text = database_text(&app).await;
    assert!(!text.contains(&jwt_hex));
    for file in database_files(&path) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(32).any(|w| w == jwt.as_slice()),
            "{} holds the signing key",
            file.display()
        );
        assert!(!bytes.windows(64).any(|w| w == jwt_hex.as_bytes()));
    }
    // A thief with a copy of the database (and our code, but not the secrets file) runs a server
    // on it: the tokens it mints are refused by the real server.
    let copy = tempfile::tempdir().unwrap();
    for file in database_files(&path) {
        let name = file
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace("test.db", "stolen.db");
        std::fs::copy(&file, copy.path().join(name)).unwrap();
    }
    let mut args = test_args();
    args.database = format!("sqlite://{}", copy.path().join("stolen.db").display()).into();
    let thief = TestApp::spawn_with_args(Backend::Sqlite, args).await;
    let login = thief
        .api()
        .login(&LoginRequest {
            email: alice.email.clone(),
            auth_key: alice.auth_key.clone(),
            device_name: None,
        })
        .await
        .unwrap();
    let mut forged = app.api();
    forged.set_token(Some(login.access_token));
    assert_eq!(forged.sessions().await.unwrap_err().status(), Some(401));
    thief.stop().await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_an_old_version_kept_in_the_database_move_out_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("old.db");
    let url = format!("sqlite://{}", db.display());
    // The old version's state: its secrets in the database, no secrets file.
    let store = sealpost_server::Store::connect(&url, 1).await.unwrap();
    store
        .test_execute(
            "INSERT INTO server_secrets (name, value) VALUES ('jwt', $1), ('prelogin', $2)",
            &[
                sealpost_server::store::testing::Value::Bytes(vec![0x11; 32]),
                sealpost_server::store::testing::Value::Bytes(vec![0x22; 32]),
            ],
        )
        .await
        .unwrap();
    store.close().await;
    let mut args = test_args();
    args.database = url.into();
    let app = TestApp::spawn_with_args(Backend::Sqlite, args.clone()).await;
    // Moved: the file has them, the database no longer does.
    let secrets: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("old.db.secrets")).unwrap())
            .unwrap();
    assert_eq!(secrets["jwt"], "11".repeat(32));
    assert_eq!(secrets["prelogin"], "22".repeat(32));
    assert!(app.store.legacy_secrets().await.unwrap().is_empty());
    // Sessions survive the move: a token signed with the moved key is accepted.
    let alice = app.user("alice").await;
    let key = sealpost_server::tokens::JwtKey::new(vec![0x11; 32]);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut api = app.api();
    api.set_token(Some(
        key.sign(&sealpost_server::tokens::Claims {
            sub: alice.id,
            sid: alice.session_id,
            iat: now,
            exp: now + 60,
        })
        .into(),
    ));
    api.sessions().await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn postgres_needs_secrets_outside_the_database() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    let mut args = test_args();
    args.database = db.url.clone().into();
    let refused = sealpost_server::Server::bind(args).await.unwrap_err();
    let message = format!("{refused:#}");
    assert!(message.contains("--secrets-file"), "{message}");
    assert!(message.contains("SEALPOST_PRELOGIN_SECRET"), "{message}");
}
