//! The transport (PROTOCOL §7) through the SDK: the real server terminating TLS with a
//! certificate that a CA made in the test signed; https:// and wss:// with that CA trusted; a
//! certificate from a CA the client was not told to trust refused; plain HTTP refused before
//! anything is sent unless the host is loopback; the request timeout bounding a request and
//! never an open stream.

use std::sync::Arc;
use std::time::Duration;

use sealpost_client::api::ApiError;
use sealpost_client::{
    Api, Client, Error, MemoryKeystore, RegisterOptions, StreamEvent, Transport, TransportError,
};
use sealpost_testkit::tls::TestCa;
use uuid::Uuid;

use crate::both;
use crate::helpers::*;
use crate::stream::next;
use crate::support::PASSWORD;

/// A client of `url` with `transport` that registers `name`; its keystore, to share.
async fn register(
    url: &str,
    transport: &Transport,
    name: &str,
) -> (Client, Arc<MemoryKeystore>, String) {
    let email = format!("{name}-{}@example.test", Uuid::new_v4().simple());
    let keystore = Arc::new(MemoryKeystore::new());
    let client = Client::with_transport(url, Arc::clone(&keystore), transport).unwrap();
    let options = RegisterOptions {
        recovery_key: false,
        device_name: Some("tls test".into()),
    };
    client.register(&email, PASSWORD, options).await.unwrap();
    (client, keystore, email)
}

/// A server that terminates TLS itself (`--tls-cert`, `--tls-key`) with a certificate for
/// `localhost` and 127.0.0.1 signed by a CA made here (TLS has nothing to do with the store:
/// SQLite only); the CA, and a transport that trusts it.
async fn tls_app() -> (TestApp, TestCa, Transport) {
    let ca = TestCa::new();
    let mut args = test_args();
    args.tls_cert = Some(ca.server_cert.clone());
    args.tls_key = Some(ca.server_key.clone());
    let app = TestApp::spawn_with(Backend::Sqlite, args).await.unwrap();
    let transport = trusting(&ca);
    (app, ca, transport)
}

/// A transport that trusts `ca` only.
fn trusting(ca: &TestCa) -> Transport {
    Transport::new()
        .trust_ca_pem(&std::fs::read(&ca.ca_cert).unwrap())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_wss_with_a_trusted_ca() {
    let (app, _ca, transport) = tls_app().await;
    let by_address = format!("https://{}", app.addr);
    let by_name = format!("https://localhost:{}", app.addr.port());

    // The certificate names both: an IP address and a DNS name each check out.
    for url in [&by_address, &by_name] {
        Api::with_transport(url, &transport)
            .unwrap()
            .healthz()
            .await
            .unwrap();
    }

    let (alice, _, _) = register(&by_address, &transport, "alice").await;
    let (bob, _, bob_email) = register(&by_name, &transport, "bob").await;
    let mut live = bob.stream(0);
    assert!(matches!(
        next(&mut live).await.unwrap(),
        StreamEvent::Connected { after: 0 }
    ));
    let sent = alice.send(bob_email.as_str(), "over TLS").await.unwrap();
    match next(&mut live).await.unwrap() {
        StreamEvent::Message(received) => {
            assert_eq!(received.entry.seq, sent.seq);
            assert_eq!(received.message.unwrap().text, "over TLS");
        }
        other => panic!("expected the message over wss, got {other:?}"),
    }
    drop(live);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_an_untrusted_ca_is_refused() {
    let (app, _ca, transport) = tls_app().await;
    let url = format!("https://localhost:{}", app.addr.port());
    let trusting_another = trusting(&TestCa::new());

    // Neither another CA given nor the web's roots vouch for it.
    for refusing in [&trusting_another, &Transport::new()] {
        let api = Api::with_transport(&url, refusing).unwrap();
        let error = api.healthz().await.unwrap_err();
        assert!(matches!(error, ApiError::Transport(_)), "{error:?}");
        // UnknownIssuer, or BadSignature from another CA of the same name.
        assert!(
            format!("{error:?}").contains("InvalidCertificate("),
            "not refused for its certificate: {error:?}"
        );
    }

    // The stream too: a client signed in with the right CA, whose keystore a client trusting
    // another CA shares, cannot open wss:// to the server.
    let (_, keystore, _) = register(&url, &transport, "carol").await;
    let refusing = Client::with_transport(&url, keystore, &trusting_another).unwrap();
    refusing.unlock(PASSWORD).await.unwrap();
    let mut live = refusing.stream(0);
    match next(&mut live).await.unwrap() {
        StreamEvent::Disconnected { code: None, reason } => {
            assert!(reason.contains("invalid peer certificate"), "{reason}");
        }
        other => panic!("expected a refused connection, got {other:?}"),
    }
    drop(live);
    app.stop().await;
}

both!(plain_http_only_to_loopback, |app: TestApp| async move {
    // 192.0.2.1 (TEST-NET-1) is never reached: a refusal is `Refused`/`Transport`, which
    // only the check before sending makes; a connection attempt would end as `Unreachable`.
    let far = "http://192.0.2.1:8080";
    let error = Client::with_transport(far, MemoryKeystore::new(), &Transport::new()).unwrap_err();
    assert!(
        matches!(
            error,
            Error::Transport(TransportError::InsecureHttp { ref url }) if url == far
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("--insecure-http"), "{error}");

    // The infallible constructors refuse on every call instead, before sending.
    let api = Api::new(far);
    let error = api.healthz().await.unwrap_err();
    assert!(
        matches!(
            error,
            ApiError::Refused(TransportError::InsecureHttp { .. })
        ),
        "{error:?}"
    );
    let client = Client::new(far, MemoryKeystore::new());
    let error = client
        .register("x@example.test", PASSWORD, RegisterOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Transport(_)), "{error:?}");

    // So does the stream, of a client whose keystore names a far plain-HTTP server.
    let (_, keystore, _) = register(&app.base, &Transport::new(), "dave").await;
    let far_client = Client::new(far, keystore);
    far_client.unlock(PASSWORD).await.unwrap();
    let mut live = far_client.stream(0);
    let error = next(&mut live).await.unwrap_err();
    assert!(matches!(error, Error::Transport(_)), "{error:?}");

    // Loopback over plain HTTP is fine without opting in, by address and by name.
    let localhost = format!("http://localhost:{}", app.addr.port());
    for url in [app.base.as_str(), localhost.as_str()] {
        Api::with_transport(url, &Transport::new())
            .unwrap()
            .healthz()
            .await
            .unwrap();
    }
});

/// A server that accepts connections and never answers.
async fn silent_server() -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (addr, task)
}

#[tokio::test]
async fn the_request_timeout_ends_a_request_that_gets_no_answer() {
    let (addr, task) = silent_server().await;
    let transport = Transport::new().request_timeout(Duration::from_millis(300));
    let api = Api::with_transport(&format!("http://{addr}"), &transport).unwrap();
    match api.healthz().await.unwrap_err() {
        ApiError::Transport(e) => assert!(e.is_timeout(), "{e:?}"),
        other => panic!("expected a timeout, got {other:?}"),
    }
    task.abort();
}

both!(
    an_open_stream_outlives_the_request_timeout,
    |app: TestApp| async move {
        let (alice, _, _) = register(&app.base, &Transport::new(), "alice").await;
        let (_, keystore, bob_email) = register(&app.base, &Transport::new(), "bob").await;
        let short = Transport::new().request_timeout(Duration::from_secs(1));
        let bob = Client::with_transport(&app.base, keystore, &short).unwrap();
        bob.unlock(PASSWORD).await.unwrap();
        let mut live = bob.stream(0);
        assert!(matches!(
            next(&mut live).await.unwrap(),
            StreamEvent::Connected { after: 0 }
        ));
        // Idle for longer than a request may take (this is the condition under test, not a
        // wait for something to happen); then a message still arrives on the same connection.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        alice.send(bob_email.as_str(), "still here").await.unwrap();
        match next(&mut live).await.unwrap() {
            StreamEvent::Message(received) => {
                assert_eq!(received.message.unwrap().text, "still here")
            }
            other => panic!("the stream did not stay open: {other:?}"),
        }
    }
);
