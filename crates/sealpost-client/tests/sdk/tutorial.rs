//! The tutorial's scenario through the SDK: two users register, Alice sends "Hello, Bob!", Bob
//! fetches and decrypts it, Alice sees her sender copy; and a later run unlocks from the keystore.

use std::sync::Arc;

use sealpost_client::keystore::Keystore as _;
use sealpost_client::{Client, Error, FileKeystore};

use crate::both;
use crate::helpers::*;
use crate::support::*;

both!(hello_bob, |app: TestApp| async move {
    let alice = person(&app, "alice").await;
    let bob = person(&app, "bob").await;

    let sent = alice.client.send(&bob.email, "Hello, Bob!").await.unwrap();
    assert_eq!(sent.to.user_id, bob.id);
    assert_eq!(sent.seq, 1);

    let page = bob.client.fetch(0, None).await.unwrap();
    assert_eq!(page.next, 1);
    let [received] = &page.messages[..] else {
        panic!("{:?}", page.messages)
    };
    let message = received.message.as_ref().unwrap();
    assert_eq!(message.text, "Hello, Bob!");
    assert_eq!((message.from, message.to), (alice.id, bob.id));
    assert_eq!(message.from_email.as_deref(), Some(alice.email.as_str()));
    assert_eq!(message.id, sent.id);
    assert_eq!(message.payload_id, sent.payload_id);
    assert!(!message.outgoing);

    // Alice's sender copy, in her own mailbox.
    let mine = alice.client.fetch(0, None).await.unwrap();
    let [copy] = &mine.messages[..] else {
        panic!("{:?}", mine.messages)
    };
    let copy = copy.message.as_ref().unwrap();
    assert_eq!(copy.text, "Hello, Bob!");
    assert_eq!((copy.from, copy.to), (alice.id, bob.id));
    assert_eq!(copy.to_email.as_deref(), Some(bob.email.as_str()));
    assert_eq!(copy.payload_id, sent.payload_id);
    assert!(copy.outgoing);

    // Both sides compute the same safety number.
    let a = alice.client.safety_numbers(&bob.email).await.unwrap();
    let b = bob.client.safety_numbers(&alice.email).await.unwrap();
    assert_eq!(a.pinned.as_ref().unwrap().1, b.pinned.as_ref().unwrap().1);
    assert_eq!(a.pinned.unwrap().1.len(), 60);

    // A note to self carries no sender copy and opens.
    alice
        .client
        .send(&alice.email, "note to self")
        .await
        .unwrap();
    let notes = alice.client.fetch(1, None).await.unwrap();
    let note = notes.messages[0].message.as_ref().unwrap();
    assert_eq!((note.text.as_str(), note.to), ("note to self", alice.id));
    assert_eq!(notes.messages.len(), 1);

    // Paging backwards, newest first.
    let back = alice.client.fetch_before(i64::MAX, Some(1)).await.unwrap();
    assert_eq!(back.messages[0].entry.seq, 2);
    assert_eq!(back.next, 2);

    // Deleting an entry.
    bob.client.delete(sent.id).await.unwrap();
    assert!(bob.client.fetch(0, None).await.unwrap().messages.is_empty());

    // An unknown recipient is its own error.
    let unknown = alice.client.send("nobody@example.test", "hi").await;
    assert!(matches!(unknown, Err(Error::UnknownUser(_))), "{unknown:?}");
});

both!(
    a_later_run_unlocks_from_the_keystore,
    |app: TestApp| async move {
        let alice = person(&app, "alice").await;
        let dir = tempfile::tempdir().unwrap();
        let email = format!("bob-{}@example.test", uuid::Uuid::new_v4().simple());
        {
            let bob = Client::new(&app.base, FileKeystore::open(dir.path()).unwrap());
            bob.register(&email, PASSWORD, Default::default())
                .await
                .unwrap();
        }
        let sent = alice.client.send(&email, "Hello, Bob!").await.unwrap();

        // A new process: the keystore holds the session and the wrapped keys, never the password or
        // an unwrapped key.
        let keystore = FileKeystore::open(dir.path()).unwrap();
        let text = std::fs::read_to_string(keystore.path()).unwrap();
        assert!(!text.contains(PASSWORD));
        let bob = Client::from_keystore(keystore, "http://unused.invalid").unwrap();
        assert_eq!(bob.server(), app.base);
        let me = bob.whoami().unwrap().unwrap();
        assert!(me.signed_in && !me.unlocked);
        assert!(matches!(bob.fetch(0, None).await, Err(Error::Locked)));
        assert!(matches!(
            bob.unlock("not the password").await,
            Err(Error::WrongPassword)
        ));
        bob.unlock(PASSWORD).await.unwrap();
        for _ in 0..2 {
            // Reading the same entry again is not a replay, across runs too.
            let page = bob.client_fetch().await;
            assert_eq!(page, vec![(sent.id, "Hello, Bob!".to_owned())]);
        }
        let again = Client::from_keystore(FileKeystore::open(dir.path()).unwrap(), "").unwrap();
        again.unlock(PASSWORD).await.unwrap();
        assert_eq!(
            again.client_fetch().await,
            vec![(sent.id, "Hello, Bob!".to_owned())]
        );
        let stored = FileKeystore::open(dir.path()).unwrap().load().unwrap();
        assert_eq!(stored.seen.get(&sent.payload_id), Some(&sent.id));

        // Logging in again on the same keystore: a wrong password is told as such.
        let fresh = Client::new(&app.base, Arc::new(sealpost_client::MemoryKeystore::new()));
        assert!(matches!(
            fresh.login(&email, "not the password", None).await,
            Err(Error::WrongPassword)
        ));
        fresh.login(&email, PASSWORD, None).await.unwrap();
        assert_eq!(fresh.sessions().await.unwrap().len(), 2);
    }
);

/// Fetches everything and keeps what opened.
trait FetchTexts {
    async fn client_fetch(&self) -> Vec<(uuid::Uuid, String)>;
}

impl FetchTexts for Client {
    async fn client_fetch(&self) -> Vec<(uuid::Uuid, String)> {
        self.fetch_all(0)
            .await
            .unwrap()
            .into_iter()
            .map(|r| {
                let m = r.message.unwrap();
                (m.id, m.text)
            })
            .collect()
    }
}
