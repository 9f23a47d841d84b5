//! Key pinning (PROTOCOL §6): a key swapped behind the SDK's back is a `KeyChanged` error, never a
//! message sealed to it, until the user trusts the new key; a send seals to the pinned key and
//! learns of a newer version from the server's 409 `stale_key`.

use sealpost_client::{Error, SecretBytes};
use sealpost_crypto::KeyPair;

use crate::both;
use crate::helpers::*;
use crate::support::*;

both!(
    a_swapped_key_is_refused_until_trusted,
    |app: TestApp| async move {
        let alice = person(&app, "alice").await;
        let bob = person(&app, "bob").await;
        // First use pins Bob's key.
        let first = alice.client.send(&bob.email, "one").await.unwrap();
        let pinned = first.to.public_key;

        // The server (or whoever owns its database) hands out another key for Bob.
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

        // Alice's next (checked) send fails with a key change, and from then on nothing is
        // sealed to Bob until the user trusts a key.
        let next_send = alice.client.send(&bob.email, "three").await.map(|s| s.to);
        for refused in [
            next_send,
            alice.client.lookup(&bob.email).await,
            alice.client.send(&bob.email, "three").await.map(|s| s.to),
        ] {
            let Err(Error::KeyChanged(change)) = refused else {
                panic!("expected a key change, got {refused:?}")
            };
            assert_eq!(change.user_id, bob.id);
            assert_eq!(change.email.as_deref(), Some(bob.email.as_str()));
            assert_eq!(change.pinned, Some((1, pinned)));
            assert_eq!(change.offered, (1, *mallory.public()));
            assert_eq!(change.safety_number.len(), 60);
            assert!(change.to_string().contains("has changed"), "{change}");
        }
        // Bob's mailbox holds only what was sealed to his real key, and he opens it all.
        let bob_box = bob.client.fetch(0, None).await.unwrap();
        let texts: Vec<_> = bob_box
            .messages
            .iter()
            .map(|r| r.message.as_ref().unwrap().text.as_str())
            .collect();
        assert_eq!(texts, ["one", "two"]);

        // The safety numbers show both keys.
        let numbers = alice.client.safety_numbers(&bob.email).await.unwrap();
        assert!(numbers.pending.is_some() && numbers.pinned.is_some());
        assert_ne!(numbers.pending.unwrap().1, numbers.pinned.unwrap().1);

        // The user compares and accepts: sending works again, to the key now trusted.
        let trusted = alice.client.trust(&bob.email).await.unwrap();
        assert_eq!(trusted.public_key, *mallory.public());
        let sent = alice.client.send(&bob.email, "four").await.unwrap();
        assert_eq!(sent.to.public_key, *mallory.public());
        let numbers = alice.client.safety_numbers(&bob.email).await.unwrap();
        assert!(numbers.pending.is_none());
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
