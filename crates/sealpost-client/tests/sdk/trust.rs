//! Key pinning (PROTOCOL 1.1 §6): a pinned key version swapped behind the SDK's back is a forgery
//! (`KeyForged`), never a message sealed to it and never a key to trust; a newer version is a
//! `KeyChanged` until the user trusts it; a send seals to the pinned key and learns of a newer
//! version from the server's 409 `stale_key`.

use sealpost_client::{Error, ForgeryReason, SecretBytes};
use sealpost_crypto::KeyPair;

use crate::both;
use crate::helpers::*;
use crate::support::*;

both!(
    a_swapped_pinned_key_is_a_forgery_never_trusted,
    |app: TestApp| async move {
        let alice = person(&app, "alice").await;
        let bob = person(&app, "bob").await;
        // First use pins Bob's key list.
        let first = alice.client.send(&bob.email, "one").await.unwrap();
        let pinned = first.to.public_key;

        // The server (or whoever owns its database) hands out another key for Bob's version 1.
        let mallory = KeyPair::generate();
        replace_key(&app, bob.id, mallory.public()).await;

        // A send that skips the key check seals to the pinned key: the swap gains nothing.
        let unverified = sealpost_client::SendOptions {
            verify_key: false,
            ..Default::default()
        };
        let sent = alice
            .client
            .send_with(&bob.email, "two", unverified)
            .await
            .unwrap();
        assert_eq!(sent.to.public_key, pinned);

        // A checked send, a lookup, the safety numbers and even trust refuse it: a pinned version
        // never changes, so this is a forgery, not a key change to accept.
        let forged = [
            alice.client.send(&bob.email, "three").await.map(|s| s.to),
            alice.client.lookup(&bob.email).await,
            alice.client.trust(&bob.email).await,
            alice
                .client
                .safety_numbers(&bob.email)
                .await
                .map(|_| first.to.clone()),
        ];
        for refused in forged {
            let Err(Error::KeyForged(forgery)) = refused else {
                panic!("expected a forged key, got {refused:?}")
            };
            assert_eq!(forgery.user_id, bob.id);
            assert_eq!(forgery.email.as_deref(), Some(bob.email.as_str()));
            assert_eq!(forgery.key_version, 1);
            assert_eq!(forgery.reason, ForgeryReason::PinnedKeyChanged);
            assert!(forgery.to_string().contains("forged key"), "{forgery}");
        }
        // Bob's mailbox holds only what was sealed to his real key, and he opens it all.
        let bob_box = bob.client.fetch(0, None).await.unwrap();
        let texts: Vec<_> = bob_box
            .messages
            .iter()
            .map(|r| r.message.as_ref().unwrap().text.as_str())
            .collect();
        assert_eq!(texts, ["one", "two"]);

        // The server gives the real key back: all is as before.
        replace_key(&app, bob.id, &pinned).await;
        let sent = alice.client.send(&bob.email, "four").await.unwrap();
        assert_eq!(sent.to.public_key, pinned);
        let numbers = alice.client.safety_numbers(&bob.email).await.unwrap();
        assert!(numbers.pending.is_none() && numbers.pinned.is_some());
    }
);

both!(
    a_message_signed_by_a_swapped_key_is_not_shown,
    |app: TestApp| async move {
        let alice = person(&app, "alice").await;
        let bob = person(&app, "bob").await;
        // Bob pins Alice's real key on the first message.
        alice.client.send(&bob.email, "real").await.unwrap();
        let page = bob.client.fetch(0, None).await.unwrap();
        assert_eq!(page.messages[0].message.as_ref().unwrap().text, "real");

        // Mallory swaps Alice's key on the server and writes "from Alice" with it.
        let mallory = KeyPair::generate();
        replace_key(&app, alice.id, mallory.public()).await;
        let payload = sealpost_crypto::Payload::text(alice.id, bob.id, now_ms(), "forged");
        let bob_key = bob.client.lookup(&bob.email).await.unwrap().public_key;
        let ciphertext = sealpost_crypto::seal(&payload, &bob_key, &mallory);
        // Stored as if Alice sent it (through her session: the server only relays).
        let request = sealpost_client::api::SendRequest {
            to: bob.id,
            ciphertext,
            key_version: 1,
            sender_key_version: 1,
            sender_copy: None,
        };
        alice.raw_api().send(&request).await.unwrap();
        let page = bob.client.fetch(1, None).await.unwrap();
        let received = &page.messages[0];
        assert!(
            matches!(received.message, Err(Error::Forged)),
            "{:?}",
            received.message
        );
    }
);

both!(
    a_rotated_key_is_a_key_change_and_old_messages_still_open,
    |app: TestApp| async move {
        use sealpost_client::keystore::Keystore as _;
        let alice = person(&app, "alice").await;
        let bob = person(&app, "bob").await;
        alice.client.send(&bob.email, "before").await.unwrap();
        bob.client.send(&alice.email, "hi (v1)").await.unwrap();

        // Bob rotates on another device (PROTOCOL §5): version 2, wrapped under his account key.
        let record = bob.keystore.load().unwrap().account.unwrap();
        let (wrap_key, auth_key) = sealpost_crypto::derive(PASSWORD, &record.kdf).unwrap();
        let account_key =
            sealpost_crypto::AccountKey::unwrap(&record.wrapped_account_key, &wrap_key).unwrap();
        let new = KeyPair::generate();
        let rotate = sealpost_client::api::RotateRequest {
            current_auth_key: SecretBytes::from_slice(auth_key.expose_secret()),
            public_key: new.public().as_bytes().to_vec(),
            key_version: 2,
            wrapped_secret_key: account_key.wrap_secret_key(new.secret()),
        };
        bob.raw_api().rotate_keys(&rotate).await.unwrap();

        // For Alice, a new key is a key change like any other until she trusts it.
        let refused = alice.client.send(&bob.email, "after").await;
        let Err(Error::KeyChanged(change)) = refused else {
            panic!("expected a key change, got {refused:?}")
        };
        assert_eq!((change.pinned.map(|p| p.0), change.offered.0), (Some(1), 2));
        alice.client.trust(&bob.email).await.unwrap();
        let sent = alice.client.send(&bob.email, "after").await.unwrap();
        assert_eq!(sent.to.key_version, 2);

        // Bob's client holds version 1 only: the new entry needs a new login, which unwraps both.
        let page = bob.client.fetch(0, None).await.unwrap();
        let last = page.messages.last().unwrap();
        assert!(
            matches!(last.message, Err(Error::MissingKeyVersion(2))),
            "{:?}",
            last.message
        );
        bob.client.login(&bob.email, PASSWORD, None).await.unwrap();
        let texts = |received: Vec<sealpost_client::Received>| -> Vec<String> {
            received
                .into_iter()
                .map(|r| r.message.unwrap().text)
                .collect()
        };
        assert_eq!(
            texts(bob.client.fetch_all(0).await.unwrap()),
            ["before", "hi (v1)", "after"]
        );

        // Bob now writes with version 2; Alice opens it, and still opens his version-1 message.
        bob.client.send(&alice.email, "hi (v2)").await.unwrap();
        assert_eq!(
            texts(alice.client.fetch_all(0).await.unwrap()),
            ["before", "hi (v1)", "after", "hi (v2)"]
        );
    }
);
