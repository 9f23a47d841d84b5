//! Rate limits and quotas of PROTOCOL 1.1 §4: failed logins per account and client network with
//! a per-account ceiling that cannot lock the owner out, the trusted proxy's `X-Forwarded-For`
//! and nobody else's, lookups and sends per account, and a mailbox quota.

use std::net::IpAddr;

use sealpost_client::api::SendRequest;

use crate::both;
use crate::helpers::*;

/// A login attempt sent from `from` (a loopback address of this machine), with extra headers.
async fn login_from(
    app: &TestApp,
    from: IpAddr,
    email: &str,
    auth_key: &[u8],
    headers: &[(&str, &str)],
) -> reqwest::Response {
    let http = reqwest::Client::builder()
        .local_address(from)
        .build()
        .unwrap();
    let mut request = http.post(format!("{}/v1/auth/login", app.base)).json(
        &serde_json::json!({"email": email, "auth_key": sealpost_crypto::b64::encode(auth_key)}),
    );
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

fn loopback(i: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, i])
}

both!(
    failed_logins_are_held_per_network_and_the_owner_still_gets_in,
    |app: TestApp| async move {
        let owner = app.user("owner").await; // signed in from 127.0.0.1
        let per_network = app.state.config.failed_logins as usize;
        let wrong = random(32);
        // 200 wrong logins from one address: the verifier sees at most `failed_logins` of them;
        // the rest are 429 with Retry-After.
        let (mut wrong_answers, mut refused) = (0, 0);
        for _ in 0..200 {
            let r = login_from(&app, loopback(77), &owner.email, &wrong, &[]).await;
            match r.status().as_u16() {
                401 => wrong_answers += 1,
                429 => {
                    assert!(r.headers().contains_key("retry-after"));
                    refused += 1;
                }
                other => panic!("unexpected {other}"),
            }
        }
        assert!(
            wrong_answers <= per_network,
            "{wrong_answers} attempts reached the verifier"
        );
        assert_eq!(refused, 200 - wrong_answers);
        // 50 other addresses, each up to its own limit: together well past the account's ceiling.
        for i in 2..=51 {
            for _ in 0..per_network {
                let r = login_from(&app, loopback(i), &owner.email, &wrong, &[]).await;
                assert!(matches!(r.status().as_u16(), 401 | 429));
            }
        }
        // A stranger is refused by the ceiling even on a fresh network ...
        let stranger = login_from(&app, loopback(200), &owner.email, &wrong, &[]).await;
        assert_eq!(stranger.status(), 429);
        // ... but the owner, from the network it signed in from, still gets in.
        let ok = login_from(
            &app,
            loopback(1),
            &owner.email,
            owner.auth_key.expose(),
            &[],
        )
        .await;
        assert_eq!(ok.status(), 200, "{:?}", ok.text().await);
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxys_clients_are_limited_apart_and_a_spoofed_header_changes_nothing() {
    let mut args = test_args();
    args.failed_logins = 3;
    args.trusted_proxy = vec!["127.0.0.10/32".parse().unwrap()];
    let app = TestApp::spawn_with(Backend::Sqlite, args).await.unwrap();
    let victim = app.user("victim").await;
    let wrong = random(32);
    let proxy = loopback(10);
    // Client A behind the proxy uses up its budget ...
    for _ in 0..3 {
        let r = login_from(
            &app,
            proxy,
            &victim.email,
            &wrong,
            &[("x-forwarded-for", "198.51.100.1")],
        )
        .await;
        assert_eq!(r.status(), 401);
    }
    let a = login_from(
        &app,
        proxy,
        &victim.email,
        &wrong,
        &[("x-forwarded-for", "198.51.100.1")],
    )
    .await;
    assert_eq!(a.status(), 429);
    // ... while client B, behind the same proxy, still reaches the verifier.
    let b = login_from(
        &app,
        proxy,
        &victim.email,
        &wrong,
        &[("x-forwarded-for", "198.51.100.2")],
    )
    .await;
    assert_eq!(b.status(), 401);
    // An untrusted peer cannot pose as many clients by making the header up.
    let spoofer = loopback(20);
    for i in 0..3 {
        let header = format!("203.0.113.{i}");
        let r = login_from(
            &app,
            spoofer,
            &victim.email,
            &wrong,
            &[("x-forwarded-for", &header)],
        )
        .await;
        assert_eq!(r.status(), 401);
    }
    let r = login_from(
        &app,
        spoofer,
        &victim.email,
        &wrong,
        &[("x-forwarded-for", "203.0.113.99")],
    )
    .await;
    assert_eq!(r.status(), 429, "the made-up header was believed");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookups_and_sends_are_limited_per_account() {
    let mut args = test_args();
    args.rate_lookups = 5;
    args.rate_sends = 3;
    let app = TestApp::spawn_with(Backend::Sqlite, args).await.unwrap();
    let alice = app.user("alice").await;
    let bob = app.user("bob").await;
    for _ in 0..5 {
        alice.api.user(bob.id).await.unwrap();
    }
    let e = alice.api.user(bob.id).await.unwrap_err();
    assert_eq!((e.status(), e.code()), (Some(429), Some("rate_limited")));
    assert!(e.retry_after().is_some());
    // Bob's own budget is his.
    bob.api.user(alice.id).await.unwrap();
    let send = |to: uuid::Uuid| SendRequest {
        to,
        ciphertext: ciphertext(1),
        key_version: 1,
        sender_key_version: 1,
        sender_copy: None,
    };
    for _ in 0..3 {
        alice.api.send(&send(bob.id)).await.unwrap();
    }
    let e = alice.api.send(&send(bob.id)).await.unwrap_err();
    assert_eq!(e.status(), Some(429));
    bob.api.send(&send(alice.id)).await.unwrap();
    app.stop().await;
}

both!(
    a_full_mailbox_takes_no_more_until_an_entry_goes,
    |app: TestApp| async move {
        // The quota of this test's server: three entries a mailbox.
        let backend = app.backend;
        app.stop().await;
        let mut args = test_args();
        args.mailbox_max_entries = 3;
        let app = TestApp::spawn_with(backend, args).await.unwrap();
        let alice = app.user("alice").await;
        let bob = app.user("bob").await;
        let send = || SendRequest {
            to: bob.id,
            ciphertext: ciphertext(1),
            key_version: 1,
            sender_key_version: 1,
            sender_copy: None,
        };
        let mut ids = Vec::new();
        for _ in 0..3 {
            ids.push(alice.api.send(&send()).await.unwrap().id);
        }
        let e = alice.api.send(&send()).await.unwrap_err();
        assert_eq!(
            (e.status(), e.code(), e.field()),
            (Some(429), Some("rate_limited"), Some("to"))
        );
        assert!(e.retry_after().is_some());
        // Nothing was stored by the refused send.
        let page = bob
            .api
            .messages(sealpost_client::api::Page::default())
            .await
            .unwrap();
        assert_eq!(page.messages.len(), 3);
        // Bob deletes one: there is room again.
        bob.api.delete_message(ids[0]).await.unwrap();
        alice.api.send(&send()).await.unwrap();
        app.stop().await;
    }
);

/// The body of the i-th request of a kind.
type BodyOf<'a> = dyn Fn(usize) -> serde_json::Value + 'a;

/// POST `path` with a JSON body from 127.0.0.1; the status and the Retry-After header, if any.
async fn post(app: &TestApp, path: &str, body: serde_json::Value) -> (u16, Option<String>) {
    let r = reqwest::Client::new()
        .post(format!("{}{path}", app.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    let retry = r
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (r.status().as_u16(), retry)
}

both!(
    prelogin_login_refresh_and_recovery_are_limited_per_address_and_prelogin_per_email,
    |app: TestApp| async move {
        let backend = app.backend;
        app.stop().await;
        let mut args = test_args();
        args.rate_per_address = 3;
        args.rate_per_email = 1_000;
        let app = TestApp::spawn_with(backend, args).await.unwrap();
        let key = sealpost_crypto::b64::encode(&[1u8; 32]);
        // Each of these has a budget of its own per address: three answers, then 429.
        let calls: [(&str, &BodyOf<'_>, u16); 4] = [
            (
                "/v1/auth/prelogin",
                &|i| serde_json::json!({"email": format!("p{i}@example.test")}),
                200,
            ),
            (
                "/v1/auth/login",
                &|i| serde_json::json!({"email": format!("l{i}@example.test"), "auth_key": key}),
                401,
            ),
            (
                "/v1/auth/refresh",
                &|i| serde_json::json!({"refresh_token": format!("nope-{i}")}),
                401,
            ),
            (
                "/v1/auth/recover",
                &|i| serde_json::json!({"email": format!("r{i}@example.test"), "recovery_auth_key": key}),
                401,
            ),
        ];
        for (path, body, answer) in calls {
            for i in 0..3 {
                assert_eq!(post(&app, path, body(i)).await.0, answer, "{path} #{i}");
            }
            let (status, retry) = post(&app, path, body(3)).await;
            assert_eq!(status, 429, "{path}");
            let retry: u64 = retry.expect("Retry-After").parse().unwrap();
            assert!((1..=60).contains(&retry), "{path}: {retry}");
        }
        app.stop().await;

        // Prelogin is limited per email too, whatever the address.
        let mut args = test_args();
        args.rate_per_email = 2;
        let app = TestApp::spawn_with(backend, args).await.unwrap();
        let same = serde_json::json!({"email": "polled@example.test"});
        for i in 0..2 {
            let from = reqwest::Client::builder()
                .local_address(loopback(10 + i))
                .build()
                .unwrap();
            let r = from
                .post(format!("{}/v1/auth/prelogin", app.base))
                .json(&same)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        assert_eq!(post(&app, "/v1/auth/prelogin", same).await.0, 429);
        let other = serde_json::json!({"email": "other@example.test"});
        assert_eq!(post(&app, "/v1/auth/prelogin", other).await.0, 200);
        app.stop().await;
    }
);
