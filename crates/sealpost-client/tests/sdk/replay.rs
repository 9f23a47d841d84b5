//! The replay check (PROTOCOL §3.3 step 5): the same ciphertext posted twice shows the second entry
//! as `Replayed`; reading the first again is fine.

use sealpost_client::Error;

use crate::both;
use crate::helpers::*;
use crate::support::*;

both!(
    the_same_ciphertext_twice_is_a_replay,
    |app: TestApp| async move {
        let bob = person(&app, "bob").await;
        let mallory = raw_sender(&app, "mallory").await;
        let bob_key = bob.client.lookup(&bob.email).await.unwrap().public_key;
        let ciphertext = seal_from(&mallory, &bob, &bob_key, "pay 100 to Mallory");
        let first = mallory.post(bob.id, ciphertext.clone()).await;
        let second = mallory.post(bob.id, ciphertext).await;
        assert_ne!(first.id, second.id);

        for _ in 0..2 {
            let page = bob.client.fetch(0, None).await.unwrap();
            let [a, b] = &page.messages[..] else {
                panic!("{:?}", page.messages)
            };
            assert_eq!(a.entry.id, first.id);
            assert_eq!(a.message.as_ref().unwrap().text, "pay 100 to Mallory");
            assert_eq!(b.entry.id, second.id);
            assert!(matches!(b.message, Err(Error::Replayed)), "{:?}", b.message);
        }
    }
);
