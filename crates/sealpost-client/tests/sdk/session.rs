//! Sessions: an access token the server refuses is refreshed once and the call retried; a refresh
//! that fails signs the keystore out; logout ends the session.

use sealpost_client::keystore::Keystore as _;
use sealpost_client::Error;

use crate::both;
use crate::helpers::*;
use crate::support::*;

both!(
    a_refused_token_is_refreshed_once,
    |app: TestApp| async move {
        let alice = person(&app, "alice").await;
        let bob = person(&app, "bob").await;
        // The access token goes bad (as an expired one would); the refresh token is still good.
        let mut stored = alice.keystore.load().unwrap();
        let session = stored.account.as_mut().unwrap().session.as_mut().unwrap();
        let old_refresh = session.refresh_token.clone();
        session.access_token = "not.a.token".into();
        alice.keystore.save(&stored).unwrap();

        alice.client.send(&bob.email, "still here").await.unwrap();
        let stored = alice.keystore.load().unwrap();
        let session = stored.account.unwrap().session.unwrap();
        assert_ne!(session.access_token.expose(), "not.a.token");
        assert_ne!(session.refresh_token, old_refresh);

        // Both tokens bad: the refresh fails, and the client is signed out.
        let mut stored = alice.keystore.load().unwrap();
        let session = stored.account.as_mut().unwrap().session.as_mut().unwrap();
        session.access_token = "not.a.token".into();
        session.refresh_token = "bm90IGEgdG9rZW4".into();
        alice.keystore.save(&stored).unwrap();
        let refused = alice.client.sessions().await;
        assert!(matches!(refused, Err(Error::SignedOut)), "{refused:?}");
        assert!(alice
            .keystore
            .load()
            .unwrap()
            .account
            .unwrap()
            .session
            .is_none());
        assert!(!alice.client.whoami().unwrap().unwrap().signed_in);
    }
);

both!(logout_ends_the_session, |app: TestApp| async move {
    let alice = person(&app, "alice").await;
    let token = alice.access_token();
    let sessions = alice.client.sessions().await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert!(sessions[0].current);
    alice.client.logout().await.unwrap();
    assert!(!alice.client.is_unlocked());
    assert!(matches!(
        alice.client.sessions().await,
        Err(Error::SignedOut)
    ));
    // The server agrees.
    let mut api = app.api();
    api.set_token(Some(token));
    assert_eq!(api.sessions().await.unwrap_err().status(), Some(401));
});
