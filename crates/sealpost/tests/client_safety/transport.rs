//! The CLI and PROTOCOL §7: `sealpost serve --tls-cert` with a certificate that a CA made in the
//! test signed, reached over https:// by the CLI with `--ca-cert` (or `SEALPOST_CA_CERT`) and
//! refused without it, and over wss:// by the SDK's stream; plain http:// to a server that is not
//! loopback refused before anything happens.

use std::time::Duration;

use futures_util::StreamExt as _;
use sealpost_client::{Client, FileKeystore, StreamEvent};
use sealpost_testkit::tls::TestCa;

use crate::support::{trusting, Person, TlsServer, PASSWORD};

#[tokio::test]
async fn plain_http_to_a_far_server_is_refused_before_anything_happens() {
    // 192.0.2.1 (TEST-NET-1) is never reached. No SEALPOST_PASSWORD here on purpose: the
    // refusal comes before the password prompt (which, without a terminal, would fail with
    // another message), and so before any connection.
    let far = "http://192.0.2.1:8080";
    let person = Person::new("far", far, &[]);
    for args in [
        vec!["register", person.email.as_str()],
        vec!["login", person.email.as_str()],
    ] {
        let mut command = std::process::Command::new(crate::support::BIN);
        command
            .env("SEALPOST_HOME", person.home.path())
            .env("SEALPOST_SERVER", far)
            .env_remove("SEALPOST_PASSWORD")
            .stdin(std::process::Stdio::null())
            .args(&args);
        let output = tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr
                .contains("refusing to send credentials to http://192.0.2.1:8080 over plain HTTP"),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("--insecure-http"), "{stderr}");
        assert!(!stderr.contains("cannot reach"), "{stderr}");
    }
    // Nothing was stored either.
    assert!(!person.home.path().join("state.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_and_wss_to_sealpost_serve_with_tls_cert() {
    let ca = TestCa::new();
    let server = TlsServer::start(&ca).await;
    let ca_arg = ca.ca_cert.to_str().unwrap();

    // Without the CA: the certificate is refused, and said so, before any account exists.
    let stranger = Person::new("stranger", &server.url, &[]);
    let output = stranger
        .run(&["register", &stranger.email, "--no-recovery-key"])
        .await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("invalid peer certificate: UnknownIssuer"),
        "{stderr}"
    );

    // With it, by flag and by environment: register, send, inbox over https.
    let alice = Person::new("alice", &server.url, &["--ca-cert", ca_arg]);
    let mut bob = Person::new("bob", &server.url, &[]);
    bob.env
        .push(("SEALPOST_CA_CERT".to_owned(), ca_arg.to_owned()));
    alice.register().await;
    bob.register().await;
    alice
        .ok(&["send", &bob.email, "sealed, then encrypted in transit"])
        .await;
    let inbox = bob.ok(&["inbox"]).await;
    assert!(
        inbox.contains("\n    sealed, then encrypted in transit\n"),
        "{inbox}"
    );
    let whoami = bob.ok(&["whoami"]).await;
    assert!(
        whoami.contains(&format!("server:      {}", server.url)),
        "{whoami}"
    );

    // The SDK's stream over wss, on Bob's state: the backlog, then a message as it is sent.
    let keystore = FileKeystore::open(bob.home.path()).unwrap();
    let client = Client::with_transport(&server.url, keystore, &trusting(&ca)).unwrap();
    client.unlock(PASSWORD).await.unwrap();
    let mut live = client.stream(0);
    let mut texts = Vec::new();
    while texts.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(30), live.next())
            .await
            .expect("the stream said nothing within 30 s")
            .expect("the stream ended")
            .unwrap();
        match event {
            StreamEvent::Connected { after: 0 } => {
                alice.ok(&["send", &bob.email, "live over wss"]).await;
            }
            StreamEvent::Message(received) => texts.push(received.message.unwrap().text),
            other => panic!("{other:?}\n{}", server.log()),
        }
    }
    assert_eq!(
        texts,
        ["sealed, then encrypted in transit", "live over wss"]
    );
}
