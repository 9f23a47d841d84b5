//! The key lifecycle through the SDK (PROTOCOL §5, docs/KEYS.md): a password change, recovery
//! with the recovery key, rotation, and deletion, each checked for what it must keep (every
//! message opens) and what it must end (old passwords, other sessions, the deleted account's data).

use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::BoxStream;
use futures_util::StreamExt as _;
use sealpost_client::api::{Page, SecretBytes};
use sealpost_client::keystore::{Keystore as _, Stored};
use sealpost_client::{Client, Error, MemoryKeystore, Received, StreamEvent};
use sealpost_crypto::RecoveryKey;
use sealpost_server::store::testing::Value;
use uuid::Uuid;

use crate::both;
use crate::helpers::*;
use crate::support::*;

const NEW_PASSWORD: &str = "a brand new password";

type Live = BoxStream<'static, Result<StreamEvent, Error>>;

/// The texts of what opened, in order; panics on an entry that did not.
fn texts(received: Vec<Received>) -> Vec<String> {
    received
        .into_iter()
        .map(|r| match r.message {
            Ok(m) => m.text,
            Err(e) => panic!("entry #{} did not open: {e}", r.entry.seq),
        })
        .collect()
}

/// A client on a device of its own, signed in.
async fn device(app: &TestApp, email: &str, password: &str) -> Client {
    let client = Client::new(&app.base, MemoryKeystore::new());
    client.login(email, password, None).await.unwrap();
    client
}

/// The stream's events until it ends with an error, which is returned; each within 30 s.
async fn end_of(live: &mut Live) -> Error {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(30), live.next())
            .await
            .expect("the stream said nothing within 30 s")
            .expect("the stream ended without an error");
        if let Err(e) = event {
            return e;
        }
    }
}

/// Reads a stream until it has delivered `n` messages.
async fn read_messages(live: &mut Live, n: usize) {
    let mut seen = 0;
    while seen < n {
        let event = tokio::time::timeout(Duration::from_secs(30), live.next())
            .await
            .expect("the stream said nothing within 30 s")
            .expect("the stream ended");
        if let StreamEvent::Message(received) = event.unwrap() {
            received.message.unwrap();
            seen += 1;
        }
    }
}

both!(
    a_password_change_keeps_every_message_and_signs_out_other_sessions,
    |app: TestApp| async move {
        let alice = person(&app, "alice").await;
        let bob = person(&app, "bob").await;
        alice.client.send(&bob.email, "one").await.unwrap();
        bob.client.send(&alice.email, "two").await.unwrap();
        // Bob's laptop follows his mailbox live.
        let laptop = device(&app, &bob.email, PASSWORD).await;
        let mut live = laptop.stream(0);
        read_messages(&mut live, 2).await;

        // A wrong current password is found here, before anything is sent.
        let wrong = bob.client.change_password("not it", NEW_PASSWORD).await;
        assert!(matches!(wrong, Err(Error::WrongPassword)), "{wrong:?}");
        bob.client
            .change_password(PASSWORD, NEW_PASSWORD)
            .await
            .unwrap();

        // Every other session is revoked, and its stream ends.
        assert!(matches!(end_of(&mut live).await, Error::SignedOut));
        assert!(matches!(laptop.sessions().await, Err(Error::SignedOut)));
        // This one lives on and still opens everything.
        assert_eq!(bob.client.sessions().await.unwrap().len(), 1);
        assert_eq!(
            texts(bob.client.fetch_all(0).await.unwrap()),
            ["one", "two"]
        );

        // The old password no longer logs in; the new one reads every old message.
        let elsewhere = Client::new(&app.base, MemoryKeystore::new());
        let old = elsewhere.login(&bob.email, PASSWORD, None).await;
        assert!(matches!(old, Err(Error::WrongPassword)), "{old:?}");
        let fresh = device(&app, &bob.email, NEW_PASSWORD).await;
        assert_eq!(texts(fresh.fetch_all(0).await.unwrap()), ["one", "two"]);
        // A later run on the same keystore unlocks with the new password only.
        let later = Client::new(&app.base, Arc::clone(&bob.keystore));
        assert!(matches!(
            later.unlock(PASSWORD).await,
            Err(Error::WrongPassword)
        ));
        later.unlock(NEW_PASSWORD).await.unwrap();
        assert_eq!(texts(later.fetch_all(0).await.unwrap()), ["one", "two"]);

        // The key pair is the same: Alice's pin holds, and she writes on.
        assert_eq!(
            alice.client.lookup(&bob.email).await.unwrap().key_version,
            1
        );
        alice.client.send(&bob.email, "three").await.unwrap();
        assert_eq!(
            texts(fresh.fetch_all(0).await.unwrap()),
            ["one", "two", "three"]
        );
    }
);

both!(
    the_recovery_key_sets_a_new_password_and_every_message_opens,
    |app: TestApp| async move {
        let alice = person(&app, "alice").await;
        let bob = person(&app, "bob").await;
        alice.client.send(&bob.email, "one").await.unwrap();
        bob.client.send(&alice.email, "two").await.unwrap();
        // A second key version too: recovery reaches every one.
        assert_eq!(alice.client.rotate_keys().await.unwrap(), 2);
        assert!(bob.client.send(&alice.email, "three").await.is_err());
        bob.client.trust(&alice.email).await.unwrap();
        bob.client.send(&alice.email, "three").await.unwrap();
        let everything = ["one", "two", "three"];

        // Alice forgets her password. A typo in the recovery key is told as such.
        let phone = Client::new(&app.base, MemoryKeystore::new());
        let typo = with_typo(&alice.recovery_key);
        let refused = phone.recover(&alice.email, &typo, NEW_PASSWORD, None).await;
        assert!(
            matches!(refused, Err(Error::RecoveryKeyTypo)),
            "{refused:?}"
        );
        assert!(refused.unwrap_err().to_string().contains("typo"));
        // Lowercase, with spaces instead of dashes, reads the same.
        let sloppy = alice.recovery_key.to_lowercase().replace('-', " ");
        phone
            .recover(&alice.email, &sloppy, NEW_PASSWORD, Some("phone".into()))
            .await
            .unwrap();
        assert_eq!(texts(phone.fetch_all(0).await.unwrap()), everything);
        // Every session the account had is gone; the old password fails, the new one works.
        assert!(matches!(
            alice.client.sessions().await,
            Err(Error::SignedOut)
        ));
        let old = Client::new(&app.base, MemoryKeystore::new())
            .login(&alice.email, PASSWORD, None)
            .await;
        assert!(matches!(old, Err(Error::WrongPassword)), "{old:?}");
        let laptop = device(&app, &alice.email, NEW_PASSWORD).await;
        assert_eq!(texts(laptop.fetch_all(0).await.unwrap()), everything);

        // A recovery token works once: the second use is refused.
        let key = RecoveryKey::parse(&alice.recovery_key).unwrap();
        let got = app
            .api()
            .recover(
                &alice.email,
                &SecretBytes::from_slice(key.auth_key().expose_secret()),
            )
            .await
            .unwrap();
        let account_key = key
            .unwrap_account_key(got.wrapped_account_key.expose())
            .unwrap();
        let reset = |password: &str| {
            let kdf = sealpost_crypto::KdfParams::new(2, 67_108_864).unwrap();
            let (wrap_key, auth_key) = sealpost_crypto::derive(password, &kdf).unwrap();
            sealpost_client::api::ChangePasswordRequest {
                current_auth_key: None,
                recovery_token: Some(got.recovery_token.clone()),
                kdf: sealpost_client::api::Kdf {
                    alg: "argon2id13".into(),
                    salt: kdf.salt.to_vec(),
                    opslimit: kdf.opslimit,
                    memlimit: kdf.memlimit,
                },
                auth_key: SecretBytes::from_slice(auth_key.expose_secret()),
                wrapped_account_key: account_key.wrap(&wrap_key).into(),
            }
        };
        app.api()
            .change_password(&reset("third password"))
            .await
            .unwrap();
        let again = app
            .api()
            .change_password(&reset("fourth password"))
            .await
            .unwrap_err();
        assert_eq!(again.status(), Some(401));
        let third = device(&app, &alice.email, "third password").await;
        assert_eq!(texts(third.fetch_all(0).await.unwrap()), everything);

        // A new recovery key replaces the old one.
        let text = third.new_recovery_key().await.unwrap();
        assert_ne!(text.as_str(), alice.recovery_key);
        let stale = Client::new(&app.base, MemoryKeystore::new())
            .recover(&alice.email, &alice.recovery_key, "fifth password", None)
            .await;
        assert!(matches!(stale, Err(Error::WrongRecoveryKey)), "{stale:?}");
        let last = Client::new(&app.base, MemoryKeystore::new());
        last.recover(&alice.email, &text, "fifth password", None)
            .await
            .unwrap();
        assert_eq!(texts(last.fetch_all(0).await.unwrap()), everything);
    }
);

/// The recovery key's text with one symbol changed for another of the alphabet.
fn with_typo(text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    chars[5] = if chars[5] == 'A' { 'B' } else { 'A' };
    chars.into_iter().collect()
}

both!(
    a_wrong_recovery_key_is_refused_and_rate_limited,
    |app: TestApp| async move {
        // A small per-account limit, to keep the test short.
        let backend = app.backend;
        app.stop().await;
        let mut args = test_args();
        args.failed_logins = 3;
        let app = TestApp::spawn_with(backend, args).await.unwrap();
        let alice = person(&app, "alice").await;
        let phone = Client::new(&app.base, MemoryKeystore::new());
        for _ in 0..3 {
            let wrong = RecoveryKey::generate().to_text();
            let refused = phone
                .recover(&alice.email, &wrong, NEW_PASSWORD, None)
                .await;
            assert!(
                matches!(refused, Err(Error::WrongRecoveryKey)),
                "{refused:?}"
            );
        }
        // Past the limit, even the right key waits.
        for text in [
            RecoveryKey::generate().to_text().to_string(),
            alice.recovery_key.clone(),
        ] {
            let refused = phone.recover(&alice.email, &text, NEW_PASSWORD, None).await;
            assert!(
                matches!(
                    refused,
                    Err(Error::RateLimited {
                        retry_after: Some(_)
                    })
                ),
                "{refused:?}"
            );
        }
        // The limit is the account's: another one is refused as usual, not rate limited.
        let bob = person(&app, "bob").await;
        let wrong = RecoveryKey::generate().to_text();
        let refused = phone.recover(&bob.email, &wrong, NEW_PASSWORD, None).await;
        assert!(
            matches!(refused, Err(Error::WrongRecoveryKey)),
            "{refused:?}"
        );
        app.stop().await;
    }
);

both!(
    rotation_keeps_every_message_and_old_senders_see_a_key_change,
    |app: TestApp| async move {
        let alice = person(&app, "alice").await;
        let bob = person(&app, "bob").await;
        alice.client.send(&bob.email, "before").await.unwrap();
        bob.client.send(&alice.email, "bob v1").await.unwrap();
        let v1 = bob.client.whoami().unwrap().unwrap().public_key;

        assert_eq!(bob.client.rotate_keys().await.unwrap(), 2);
        let me = bob.client.whoami().unwrap().unwrap();
        assert_eq!(me.key_version, 2);
        assert_ne!(me.public_key, v1);

        // Alice seals to the key she pinned: the server refuses it as stale, and the SDK
        // fetches the new key and shows it as a key change, until she trusts it.
        let unverified = sealpost_client::SendOptions {
            verify_key: false,
            ..Default::default()
        };
        for _ in 0..2 {
            let refused = alice
                .client
                .send_with(&bob.email, "after", unverified)
                .await;
            let Err(Error::KeyChanged(change)) = refused else {
                panic!("expected a key change, got {refused:?}")
            };
            assert_eq!(change.user_id, bob.id);
            assert_eq!(change.pinned, Some((1, v1)));
            assert_eq!(change.offered, (2, me.public_key));
        }
        // The safety number she is shown is the one Bob sees with his new key.
        let hers = alice.client.safety_numbers(&bob.email).await.unwrap();
        let his = bob.client.safety_numbers(&alice.email).await.unwrap();
        assert_eq!(hers.pending.unwrap().1, his.pinned.unwrap().1);
        assert_eq!(alice.client.trust(&bob.email).await.unwrap().key_version, 2);
        let sent = alice.client.send(&bob.email, "after").await.unwrap();
        assert_eq!(sent.to.key_version, 2);

        // Bob's client, without logging in again, opens entries sealed to either version.
        let mine = bob.client.fetch_all(0).await.unwrap();
        assert_eq!(
            mine.iter().map(|r| r.entry.key_version).collect::<Vec<_>>(),
            [1, 1, 2]
        );
        assert_eq!(texts(mine), ["before", "bob v1", "after"]);
        // He now writes with version 2; Alice opens that and his version-1 message.
        bob.client.send(&alice.email, "bob v2").await.unwrap();
        assert_eq!(
            texts(alice.client.fetch_all(0).await.unwrap()),
            ["before", "bob v1", "after", "bob v2"]
        );
        // Another device gets every version at login.
        let laptop = device(&app, &bob.email, PASSWORD).await;
        assert_eq!(
            texts(laptop.fetch_all(0).await.unwrap()),
            ["before", "bob v1", "after", "bob v2"]
        );

        // A rotation there leaves the first client's keys behind: told, not failed silently.
        assert_eq!(laptop.rotate_keys().await.unwrap(), 3);
        let stale = bob.client.send(&alice.email, "from an old device").await;
        assert!(matches!(stale, Err(Error::OwnKeysChanged)), "{stale:?}");
        let twice = bob.client.rotate_keys().await;
        assert!(matches!(twice, Err(Error::OwnKeysChanged)), "{twice:?}");
    }
);

both!(
    deletion_leaves_nothing_and_what_it_sent_still_verifies,
    |app: TestApp| async move {
        let alice = person(&app, "alice").await;
        let bob = person(&app, "bob").await;
        let carol = person(&app, "carol").await;
        alice.client.send(&bob.email, "from alice").await.unwrap();
        alice.client.send(&carol.email, "hi carol").await.unwrap();
        bob.client.send(&alice.email, "to alice").await.unwrap();
        // Bob pins Alice's key now; Carol has not looked at it yet.
        assert_eq!(
            texts(bob.client.fetch_all(0).await.unwrap()),
            ["from alice", "to alice"]
        );

        // What the server holds for Alice, to look for afterwards.
        let record = alice.keystore.load().unwrap().account.unwrap();
        let (_, auth_key) = sealpost_crypto::derive(PASSWORD, &record.kdf).unwrap();
        let recovery = RecoveryKey::parse(&alice.recovery_key).unwrap();
        let recovered = app
            .api()
            .recover(
                &alice.email,
                &SecretBytes::from_slice(recovery.auth_key().expose_secret()),
            )
            .await
            .unwrap();
        let mut secrets = vec![
            sha256(auth_key.expose_secret()),
            sha256(recovery.auth_key().expose_secret()),
            record.wrapped_account_key.clone(),
            recovered.wrapped_account_key.expose().to_vec(),
        ];
        secrets.extend(record.keys.iter().map(|k| k.wrapped_secret_key.clone()));
        let entries = alice
            .raw_api()
            .messages(Page::default())
            .await
            .unwrap()
            .messages;
        assert_eq!(entries.len(), 3);
        secrets.extend(entries.iter().map(|e| e.ciphertext.clone()));
        let mut ids: Vec<Uuid> = entries.iter().map(|e| e.id).collect();

        // Another device of hers follows her mailbox.
        let laptop = device(&app, &alice.email, PASSWORD).await;
        let mut live = laptop.stream(0);
        read_messages(&mut live, 3).await;
        ids.extend(alice.client.sessions().await.unwrap().iter().map(|s| s.id));

        // Locked keys cannot delete (the proof is the password's).
        let locked = Client::new(&app.base, Arc::clone(&alice.keystore));
        assert!(matches!(locked.delete_account().await, Err(Error::Locked)));
        alice.client.delete_account().await.unwrap();

        // Here: nothing left. The other device: signed out, its stream ended.
        assert_eq!(alice.keystore.load().unwrap(), Stored::default());
        assert!(!alice.client.is_unlocked());
        assert!(matches!(end_of(&mut live).await, Error::SignedOut));
        let old = Client::new(&app.base, MemoryKeystore::new())
            .login(&alice.email, PASSWORD, None)
            .await;
        assert!(matches!(old, Err(Error::WrongPassword)), "{old:?}");

        // Lookups answer 404, and nothing can be sent to her.
        for contact in [alice.email.clone(), alice.id.to_string()] {
            let gone = bob.client.lookup(contact.as_str()).await;
            assert!(matches!(gone, Err(Error::UnknownUser(_))), "{gone:?}");
        }
        let unsent = bob.client.send(&alice.email, "are you there?").await;
        assert!(matches!(unsent, Err(Error::UnknownUser(_))), "{unsent:?}");

        // What she sent still opens and verifies: with the key Bob pinned, and with the one Carol
        // fetches now (GET /v1/users/{id}/keys/1 answers `deleted: true`).
        let page = bob.client.fetch_all(0).await.unwrap();
        assert_eq!(page[0].message.as_ref().unwrap().from, alice.id);
        let theirs = carol.client.fetch_all(0).await.unwrap();
        let message = theirs[0].message.as_ref().unwrap();
        assert_eq!(
            (message.from, message.text.as_str()),
            (alice.id, "hi carol")
        );
        let key = carol.raw_api().user_key(alice.id, 1).await.unwrap();
        assert!(key.deleted && key.email.is_none());

        // No table holds her email, auth hashes, wraps, sessions or mailbox entries (while
        // Bob's, rendered the same way, are there: the search is not blind).
        let text = database_text(&app).await;
        let bobs = bob.keystore.load().unwrap().account.unwrap();
        assert!(text.contains(&bob.email));
        assert!(text.contains(&hex(&bobs.wrapped_account_key)));
        let bob_session = bobs.session.unwrap().session_id;
        assert!(
            text.contains(&bob_session.simple().to_string())
                || text.contains(&bob_session.hyphenated().to_string())
        );
        assert!(!text.contains(&alice.email), "the email is still stored");
        for secret in &secrets {
            assert!(
                !text.contains(&hex(secret)),
                "still stored: {}",
                hex(secret)
            );
        }
        for id in &ids {
            assert!(
                !text.contains(&id.simple().to_string()),
                "still stored: {id}"
            );
            assert!(
                !text.contains(&id.hyphenated().to_string()),
                "still stored: {id}"
            );
        }
        for (table, column) in [
            ("sessions", "user_id"),
            ("messages", "mailbox"),
            ("recovery_tokens", "user_id"),
        ] {
            let sql = format!("SELECT COUNT(*) FROM {table} WHERE {column} = $1");
            assert_eq!(count(&app, &sql, alice.id).await, 0, "{table}");
        }

        // The address registers again, as a new user. For Bob's client that is a contact change
        // (PROTOCOL 1.1 §6), on purpose: the server could just as well be lying. Nothing is sent
        // to the new account until he compares the safety number and trusts it.
        let again = Client::new(&app.base, MemoryKeystore::new());
        let registered = again
            .register(&alice.email, "another password", Default::default())
            .await
            .unwrap();
        assert_ne!(registered.user_id, alice.id);
        let refused = bob.client.send(&alice.email, "welcome back").await;
        let Err(Error::ContactChanged(change)) = refused else {
            panic!("expected a contact change, got {refused:?}")
        };
        assert_eq!(change.email, alice.email);
        assert_eq!(change.pinned_user_id, Some(alice.id));
        assert_eq!(change.offered_user_id, registered.user_id);
        assert_eq!(change.safety_number.len(), 60);
        assert!(again.fetch_all(0).await.unwrap().is_empty());
        let trusted = bob.client.trust(&alice.email).await.unwrap();
        assert_eq!(trusted.user_id, registered.user_id);
        let sent = bob.client.send(&alice.email, "welcome back").await.unwrap();
        assert_eq!(sent.to.user_id, registered.user_id);
        assert_eq!(texts(again.fetch_all(0).await.unwrap()), ["welcome back"]);
        // What the old account sent still opens, but no longer under the address.
        let old = bob.client.fetch_all(0).await.unwrap();
        let message = old[0].message.as_ref().unwrap();
        assert_eq!(message.from, alice.id);
        assert_eq!(message.from_email, None);
        assert_eq!(
            message.from_claimed_email.as_deref(),
            Some(alice.email.as_str())
        );
    }
);

fn sha256(data: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(data).to_vec()
}

async fn count(app: &TestApp, sql: &str, id: Uuid) -> i64 {
    app.sql_scalar(sql, &[Value::Uuid(id)]).await
}
