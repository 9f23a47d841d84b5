//! The SDK facing a hostile server (PROTOCOL 1.1 §2.1, §3.3, §6): a proxy in front of a real
//! server rewrites its answers ([`EvilProxy`]). Every attack ends in a typed error, with no
//! plaintext shown and nothing sealed to a key the user did not accept: the proxy records every
//! `POST /v1/messages`, and none is sent in an attack.

use serde_json::{json, Value};

use sealpost_client::api::{self, Page};
use sealpost_client::{Client, Error, FileKeystore, ForgeryReason, MemoryKeystore, Received};
use sealpost_crypto::{KeyPair, Payload};
use sealpost_testkit::evil::{user_answer, Answer, EvilProxy};

use crate::both;
use crate::helpers::*;
use crate::support::*;

/// The entries of a mailbox as the server stores them, as JSON on the wire.
async fn wire_entries(person: &Person) -> Vec<Value> {
    let page = person.raw_api().messages(Page::default()).await.unwrap();
    page.messages
        .iter()
        .map(|m| serde_json::to_value(m).unwrap())
        .collect()
}

/// Answers `GET /v1/messages` for everyone behind the proxy with `entries` (numbered 1, 2, …).
fn serve_page(proxy: &EvilProxy, entries: Vec<Value>) {
    let entries: Vec<Value> = entries
        .into_iter()
        .enumerate()
        .map(|(i, mut e)| {
            e["seq"] = json!(i + 1);
            e
        })
        .collect();
    proxy.intercept(move |req| {
        (req.method == "GET" && req.path == "/v1/messages").then(|| {
            let first = req.query.contains("after=0") || !req.query.contains("after=");
            let messages = if first { entries.clone() } else { vec![] };
            let next = if first { entries.len() } else { 0 };
            Answer {
                status: 200,
                body: json!({"messages": messages, "next_after": next}),
            }
        })
    });
}

/// The error an entry failed with; panics if it opened. Its plaintext (`secret`) is nowhere in
/// what the SDK handed back.
fn refused<'a>(received: &'a Received, secret: &str) -> &'a Error {
    let shown = format!("{received:?}");
    assert!(!shown.contains(secret), "plaintext shown: {shown}");
    match &received.message {
        Ok(m) => panic!("entry #{} opened: {m:?}", received.entry.seq),
        Err(e) => e,
    }
}

both!(
    another_account_behind_a_pinned_email_is_a_contact_change,
    |app: TestApp| async move {
        let proxy = EvilProxy::start(&app.base).await;
        let alice = person_at(&proxy.base, "alice").await;
        let bob = person(&app, "bob").await;
        alice.client.send(&bob.email, "hello bob").await.unwrap();
        let mallory = raw_sender(&app, "mallory").await;
        let sends = proxy.sends();

        // The server answers a lookup of Bob's email with an account it holds the key of, and
        // says that account is Bob.
        let fake = user_answer(mallory.id, &bob.email, 1, &mallory.pair);
        let (by_email, by_id) = (
            bob.email.replace('@', "%40"),
            format!("/v1/users/{}", mallory.id),
        );
        proxy.rewrite(move |req, answer| {
            let lookup = req.path == "/v1/users" && req.query.contains(&by_email);
            if lookup || req.path == by_id {
                answer.body = fake.clone();
            }
        });
        for attempt in [
            alice.client.send(&bob.email, "secret").await.map(|s| s.to),
            alice.client.lookup(&bob.email).await,
        ] {
            let Err(Error::ContactChanged(change)) = attempt else {
                panic!("expected a contact change, got {attempt:?}")
            };
            assert_eq!(change.email, bob.email);
            assert_eq!(change.pinned_user_id, Some(bob.id));
            assert_eq!(change.offered_user_id, mallory.id);
            assert_eq!(change.offered, (1, *mallory.pair.public()));
            assert_eq!(change.safety_number.len(), 60);
            let text = change.to_string();
            assert!(text.contains(&bob.email) && text.contains(&mallory.id.to_string()));
        }
        assert_eq!(
            proxy.sends(),
            sends,
            "a message was sealed to the server's key"
        );

        // A message from that account shows as from an unverified sender, never as Bob.
        let alice_key = alice.client.lookup(&alice.email).await.unwrap().public_key;
        mallory
            .post(
                alice.id,
                seal_from(&mallory, &alice, &alice_key, "it is me, bob"),
            )
            .await;
        let page = alice.client.fetch(1, None).await.unwrap();
        let message = page.messages[0].message.as_ref().unwrap();
        assert_eq!(message.from, mallory.id);
        assert_eq!(message.from_email, None);
        assert_eq!(
            message.from_claimed_email.as_deref(),
            Some(bob.email.as_str())
        );
        assert_eq!(page.messages[0].entry.from_email, None);
        // Bob stays Bob.
        proxy.behave();
        assert_eq!(
            alice.client.lookup(&bob.email).await.unwrap().user_id,
            bob.id
        );
    }
);

both!(
    an_old_key_version_the_server_makes_up_is_refused,
    |app: TestApp| async move {
        let proxy = EvilProxy::start(&app.base).await;
        let bob = person(&app, "bob").await;
        bob.client.rotate_keys().await.unwrap();
        assert_eq!(bob.client.rotate_keys().await.unwrap(), 3);
        let alice = person_at(&proxy.base, "alice").await;
        // A second victim meets Bob while the server hides his first key from the key list.
        let carol = person_at(&proxy.base, "carol").await;
        let keys_path = format!("/v1/users/{}/keys", bob.id);
        let hide = proxy.seen().len();
        {
            let keys_path = keys_path.clone();
            proxy.rewrite(move |req, answer| {
                if req.path == keys_path {
                    let keys = answer.body["keys"].as_array_mut().unwrap();
                    keys.retain(|k| k["key_version"] != 1);
                }
            });
        }
        carol.client.lookup(&bob.email).await.unwrap();
        proxy.behave();
        assert!(proxy.seen()[hide..].iter().any(|s| s.path == keys_path));
        // Alice pins Bob's whole (honest) history: versions 1, 2 and 3.
        let pinned = alice.client.lookup(&bob.email).await.unwrap();
        assert_eq!(pinned.key_version, 3);

        // The server makes up an entry "from Bob" signed with its own key as his version 1, and
        // serves that key as his version 1.
        let mallory = raw_sender(&app, "mallory").await;
        let mut forged = Vec::new();
        for victim in [&alice, &carol] {
            let key = victim
                .client
                .lookup(&victim.email)
                .await
                .unwrap()
                .public_key;
            let payload = Payload::text(bob.id, victim.id, now_ms(), "forged as bob");
            let ciphertext = sealpost_crypto::seal(&payload, &key, &mallory.pair);
            mallory.post(victim.id, ciphertext).await;
            let mut entry = wire_entries(victim).await.pop().unwrap();
            entry["from"] = json!(bob.id);
            entry["sender_key_version"] = json!(1);
            forged.push(entry);
        }
        let old_key = user_answer(bob.id, &bob.email, 1, &mallory.pair);
        let old_key_path = format!("/v1/users/{}/keys/1", bob.id);
        proxy.rewrite(move |req, answer| {
            if req.path == old_key_path {
                answer.body = old_key.clone();
            }
        });
        // Alice pinned the real version 1: the entry does not open under it.
        serve_page(&proxy, vec![forged[0].clone()]);
        let page = alice.client.fetch(0, None).await.unwrap();
        let error = refused(&page.messages[0], "forged as bob");
        assert!(matches!(error, Error::Forged), "{error:?}");
        proxy.behave();
        // Carol never saw a version 1: one older than her pins is never pinned silently.
        serve_page(&proxy, vec![forged[1].clone()]);
        let page = carol.client.fetch(0, None).await.unwrap();
        let Error::KeyForged(forgery) = refused(&page.messages[0], "forged as bob") else {
            panic!("{:?}", page.messages[0].message)
        };
        assert_eq!(
            (forgery.user_id, forgery.key_version, forgery.reason),
            (bob.id, 1, ForgeryReason::NotInKeyList)
        );
    }
);

both!(
    a_swapped_newest_key_is_refused_and_nothing_is_sealed_to_it,
    |app: TestApp| async move {
        let proxy = EvilProxy::start(&app.base).await;
        let alice = person_at(&proxy.base, "alice").await;
        let bob = person(&app, "bob").await;
        alice.client.send(&bob.email, "hello bob").await.unwrap();
        let sends = proxy.sends();
        let mallory = KeyPair::generate();
        let (bob_id, bob_email) = (bob.id, bob.email.clone());
        let bob_paths = (
            bob.email.replace('@', "%40"),
            format!("/v1/users/{}", bob.id),
        );
        let swap = move |version: i64| {
            let (by_email, by_id) = bob_paths.clone();
            let fake = user_answer(bob_id, &bob_email, version, &mallory);
            move |req: &sealpost_testkit::evil::Seen, answer: &mut Answer| {
                if (req.path == "/v1/users" && req.query.contains(&by_email)) || req.path == by_id {
                    answer.body = fake.clone();
                }
            }
        };

        // The same version with another key: a forgery, which even trust refuses.
        proxy.rewrite(swap(1));
        for attempt in [
            alice.client.send(&bob.email, "secret").await.map(|s| s.to),
            alice.client.lookup(bob.id).await,
            alice.client.trust(&bob.email).await,
        ] {
            let Err(Error::KeyForged(forgery)) = attempt else {
                panic!("expected a forged key, got {attempt:?}")
            };
            assert_eq!(forgery.reason, ForgeryReason::PinnedKeyChanged);
        }
        // A newer version: a key change, held until the user trusts it.
        proxy.behave();
        proxy.rewrite(swap(2));
        let attempt = alice.client.send(&bob.email, "secret").await;
        let Err(Error::KeyChanged(change)) = attempt else {
            panic!("expected a key change, got {attempt:?}")
        };
        assert_eq!(change.pinned.map(|p| p.0), Some(1));
        assert_eq!(change.offered.0, 2);
        assert_eq!(
            proxy.sends(),
            sends,
            "a message was sealed to the server's key"
        );
    }
);

both!(
    relabelled_moved_and_foreign_entries_are_not_shown,
    |app: TestApp| async move {
        let proxy = EvilProxy::start(&app.base).await;
        let alice = person_at(&proxy.base, "alice").await;
        let bob = person(&app, "bob").await;
        let carol = person(&app, "carol").await;
        let mallory = raw_sender(&app, "mallory").await;
        alice.client.lookup(&carol.email).await.unwrap();
        bob.client.send(&alice.email, "from bob").await.unwrap();
        bob.client.send(&carol.email, "for carol").await.unwrap();
        carol.client.send(&bob.email, "carol's copy").await.unwrap();
        let alice_key = alice.client.lookup(&alice.email).await.unwrap().public_key;
        let payload = Payload::text(alice.id, bob.id, now_ms(), "not my copy");
        mallory
            .post(
                alice.id,
                sealpost_crypto::seal(&payload, &alice_key, &mallory.pair),
            )
            .await;

        let mine = wire_entries(&alice).await;
        let theirs = wire_entries(&carol).await;
        // Bob's message to Alice, relabelled as Carol's.
        let mut relabelled = mine[0].clone();
        relabelled["from"] = json!(carol.id);
        // Bob's message to Carol, moved into Alice's mailbox.
        let moved = theirs[0].clone();
        // Carol's own sender copy, served as a copy of something Alice sent.
        let mut foreign_copy = theirs[1].clone();
        assert_eq!(foreign_copy["from"], json!(carol.id));
        foreign_copy["from"] = json!(alice.id);
        // Mallory's message made up as Alice's own sender copy.
        let mut made_up_copy = mine[1].clone();
        made_up_copy["from"] = json!(alice.id);
        made_up_copy["to"] = json!(bob.id);
        serve_page(&proxy, vec![relabelled, moved, foreign_copy, made_up_copy]);
        let page = alice.client.fetch(0, None).await.unwrap();
        let errors: Vec<_> = page
            .messages
            .iter()
            .zip(["from bob", "for carol", "carol's copy", "not my copy"])
            .map(|(received, text)| refused(received, text))
            .collect();
        assert!(matches!(errors[0], Error::Forged), "{:?}", errors[0]);
        assert!(matches!(errors[1], Error::NotForMe), "{:?}", errors[1]);
        assert!(matches!(errors[2], Error::NotForMe), "{:?}", errors[2]);
        assert!(matches!(errors[3], Error::Forged), "{:?}", errors[3]);
    }
);

both!(
    an_opened_entry_served_again_is_a_replay_also_after_a_restart,
    |app: TestApp| async move {
        let proxy = EvilProxy::start(&app.base).await;
        let home = tempfile::tempdir().unwrap();
        let client = Client::new(&proxy.base, FileKeystore::open(home.path()).unwrap());
        let email = format!("alice-{}@example.test", uuid::Uuid::new_v4().simple());
        client
            .register(&email, PASSWORD, Default::default())
            .await
            .unwrap();
        let bob = person(&app, "bob").await;
        bob.client.send(&email, "pay 10 to bob").await.unwrap();
        let first = client.fetch(0, None).await.unwrap();
        assert_eq!(
            first.messages[0].message.as_ref().unwrap().text,
            "pay 10 to bob"
        );

        // The server serves the same entry again under a new seq, and as a new entry.
        let api = {
            let mut api = client.api().clone();
            let stored = sealpost_client::keystore::Keystore::load(
                &FileKeystore::open(home.path()).unwrap(),
            )
            .unwrap();
            api.set_token(Some(stored.account.unwrap().session.unwrap().access_token));
            api
        };
        let entry: api::Message = api
            .messages(Page::default())
            .await
            .unwrap()
            .messages
            .remove(0);
        let original = serde_json::to_value(&entry).unwrap();
        let mut new_id = original.clone();
        new_id["id"] = json!(uuid::Uuid::new_v4());
        serve_page(&proxy, vec![original.clone(), original, new_id]);
        for restarted in [false, true] {
            let client = if restarted {
                let keystore = FileKeystore::open(home.path()).unwrap();
                let client = Client::from_keystore(keystore, &app.base).unwrap();
                client.unlock(PASSWORD).await.unwrap();
                client
            } else {
                client.clone()
            };
            let page = client.fetch(0, None).await.unwrap();
            let [once, again, renamed] = &page.messages[..] else {
                panic!("{:?}", page.messages)
            };
            assert_eq!(once.message.as_ref().unwrap().text, "pay 10 to bob");
            for replayed in [again, renamed] {
                let error = refused(replayed, "pay 10 to bob");
                assert!(matches!(error, Error::Replayed), "{error:?}");
            }
        }
    }
);

both!(
    a_message_dated_far_in_the_future_is_malformed,
    |app: TestApp| async move {
        let proxy = EvilProxy::start(&app.base).await;
        let alice = person_at(&proxy.base, "alice").await;
        let mallory = raw_sender(&app, "mallory").await;
        let alice_key = alice.client.lookup(&alice.email).await.unwrap().public_key;
        let tomorrow = now_ms() + 24 * 3600 * 1000;
        let payload = Payload::text(mallory.id, alice.id, tomorrow, "from the future");
        mallory
            .post(
                alice.id,
                sealpost_crypto::seal(&payload, &alice_key, &mallory.pair),
            )
            .await;
        let page = alice.client.fetch(0, None).await.unwrap();
        let error = refused(&page.messages[0], "from the future");
        assert!(matches!(error, Error::Malformed), "{error:?}");
    }
);

both!(
    weak_or_foreign_kdf_parameters_are_refused_before_any_login,
    |app: TestApp| async move {
        let alice = person(&app, "alice").await;
        let proxy = EvilProxy::start(&app.base).await;
        let salt16 = "AAAAAAAAAAAAAAAAAAAAAA";
        for kdf in [
            json!({"alg": "argon2id13", "salt": salt16, "opslimit": 1, "memlimit": 67_108_864}),
            json!({"alg": "argon2id13", "salt": salt16, "opslimit": 2, "memlimit": 8192}),
            json!({"alg": "argon2i13", "salt": salt16, "opslimit": 2, "memlimit": 67_108_864}),
            json!({"alg": "argon2id13", "salt": "AAAAAAAAAAA", "opslimit": 2, "memlimit": 67_108_864}),
        ] {
            proxy.behave();
            proxy.rewrite(move |req, answer| {
                if req.path == "/v1/auth/prelogin" {
                    answer.body = json!({ "kdf": kdf });
                }
            });
            let client = Client::new(&proxy.base, MemoryKeystore::new());
            let login = client.login(&alice.email, PASSWORD, None).await;
            assert!(matches!(login, Err(Error::InvalidKdf(_))), "{login:?}");
            let email = format!("new-{}@example.test", uuid::Uuid::new_v4().simple());
            let register = client.register(&email, PASSWORD, Default::default()).await;
            assert!(
                matches!(register, Err(Error::InvalidKdf(_))),
                "{register:?}"
            );
        }
        assert_eq!(proxy.count("POST", "/v1/auth/prelogin"), 8);
        assert_eq!(proxy.count("POST", "/v1/auth/login"), 0);
        assert_eq!(proxy.count("POST", "/v1/accounts"), 0);
    }
);

both!(
    a_login_answering_another_account_leaves_the_keystore_alone,
    |app: TestApp| async move {
        use sealpost_client::keystore::Keystore as _;
        let proxy = EvilProxy::start(&app.base).await;
        let alice = person_at(&proxy.base, "alice").await;
        let bob = person(&app, "bob").await;
        bob.client.send(&alice.email, "hi").await.unwrap();
        alice.client.fetch(0, None).await.unwrap();
        let before = alice.keystore.load().unwrap();
        assert!(before.contacts.contains_key(&bob.id) && !before.seen.is_empty());

        let mallory = raw_sender(&app, "mallory").await.id;
        proxy.rewrite(move |req, answer| {
            if req.path == "/v1/auth/login" && answer.status == 200 {
                answer.body["user_id"] = json!(mallory);
            }
        });
        let login = alice.client.login(&alice.email, PASSWORD, None).await;
        let Err(Error::OtherAccount {
            keystore, answered, ..
        }) = login
        else {
            panic!("expected another account, got {login:?}")
        };
        assert_eq!((keystore, answered), (alice.id, Some(mallory)));
        assert_eq!(alice.keystore.load().unwrap(), before);

        // Logging out is the user's explicit step; the same account signs in again, pins kept.
        proxy.behave();
        alice.client.logout().await.unwrap();
        alice
            .client
            .login(&alice.email, PASSWORD, None)
            .await
            .unwrap();
        let after = alice.keystore.load().unwrap();
        assert_eq!((after.contacts, after.seen), (before.contacts, before.seen));
    }
);

/// The forms a secret could take on the wire: raw text, hex, base64url.
fn forms(bytes: &[u8]) -> Vec<String> {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        String::from_utf8_lossy(bytes).into_owned(),
        hex,
        sealpost_crypto::b64::encode(bytes),
    ]
}

both!(
    the_password_and_what_unwraps_keys_never_leave_the_client,
    |app: TestApp| async move {
        // Every request of registration, login, a password change, a new recovery key and a
        // recovery goes through the proxy, which keeps each body.
        let proxy = EvilProxy::start(&app.base).await;
        let alice = person_at(&proxy.base, "alice").await;
        let second = "a second password, just as secret";
        let third = "and a third, after recovery";
        alice
            .client
            .change_password(PASSWORD, second)
            .await
            .unwrap();
        let recovery_key = alice.client.new_recovery_key().await.unwrap();
        let other = Client::new(&proxy.base, std::sync::Arc::new(MemoryKeystore::new()));
        other
            .recover(&alice.email, &recovery_key, third, None)
            .await
            .unwrap();
        other.login(&alice.email, third, None).await.unwrap();

        let bodies: Vec<String> = proxy.seen().iter().map(|s| s.body.to_string()).collect();
        // The wrap keys come from the passwords and the salts the client registered.
        let kdfs: Vec<Value> = proxy
            .seen()
            .iter()
            .filter(|s| s.body["kdf"].is_object())
            .map(|s| s.body["kdf"].clone())
            .collect();
        assert_eq!(
            kdfs.len(),
            3,
            "register, change and recover each send a kdf"
        );
        let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
        let mut auth_keys = Vec::new();
        for (password, kdf) in [PASSWORD, second, third].into_iter().zip(&kdfs) {
            secrets.push((
                format!("password {password:?}"),
                password.as_bytes().to_vec(),
            ));
            let kdf = sealpost_crypto::KdfParams::from_wire(
                kdf["alg"].as_str().unwrap(),
                kdf["salt"].as_str().unwrap(),
                kdf["opslimit"].as_u64().unwrap(),
                kdf["memlimit"].as_u64().unwrap(),
            )
            .unwrap();
            let (wrap, auth) = sealpost_crypto::derive(password, &kdf).unwrap();
            secrets.push((
                format!("wrap key of {password:?}"),
                wrap.expose_secret().to_vec(),
            ));
            auth_keys.push(sealpost_crypto::b64::encode(auth.expose_secret()));
        }
        let recovery = sealpost_crypto::RecoveryKey::parse(&recovery_key).unwrap();
        secrets.push(("recovery key text".into(), recovery_key.as_bytes().to_vec()));
        secrets.push(("recovery key".into(), recovery.expose_secret().to_vec()));
        secrets.push((
            "recovery wrap key".into(),
            recovery.wrap_key().expose_secret().to_vec(),
        ));
        // The scan can find what is there: each auth_key is sent, as the protocol says.
        for auth in &auth_keys {
            assert!(
                bodies.iter().any(|b| b.contains(auth.as_str())),
                "{auth} never sent"
            );
        }
        for (name, bytes) in &secrets {
            for form in forms(bytes) {
                for (i, body) in bodies.iter().enumerate() {
                    assert!(
                        !body.contains(&form),
                        "the {name} is in request #{i}: {body}"
                    );
                }
            }
        }
    }
);
