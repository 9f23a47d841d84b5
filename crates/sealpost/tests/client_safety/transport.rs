//! The CLI and PROTOCOL §7: https:// with `--ca-cert` (or `SEALPOST_CA_CERT`) through a TLS
//! front whose certificate a CA made in the test signed; that certificate refused without it;
//! plain http:// to a server that is not loopback refused before anything happens.

use sealpost_testkit::tls::{TestCa, TlsFront};
use sealpost_testkit::{both, TestApp};

use crate::support::Person;

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

both!(
    https_with_the_ca_given_and_not_without,
    |app: TestApp| async move {
        let ca = TestCa::new("Sealpost CLI test CA");
        let front = TlsFront::start(&ca.server_cert(), app.addr).await;
        let dir = tempfile::tempdir().unwrap();
        let ca_path = dir.path().join("ca.pem");
        std::fs::write(&ca_path, ca.cert_pem()).unwrap();
        let ca_arg = ca_path.to_str().unwrap();

        // Without the CA: the certificate is refused, and said so.
        let stranger = Person::new("stranger", &front.localhost_url(), &[]);
        let output = stranger
            .run(&["register", &stranger.email, "--no-recovery-key"])
            .await;
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("UnknownIssuer"), "{stderr}");

        // With it, by flag and by environment.
        let alice = Person::new("alice", &front.localhost_url(), &["--ca-cert", ca_arg]);
        let mut bob = Person::new("bob", &front.url(), &[]);
        bob.env
            .push(("SEALPOST_CA_CERT".to_owned(), ca_arg.to_owned()));
        alice.register().await;
        bob.register().await;
        alice
            .ok(&["send", &bob.email, "sealed, then encrypted in transit"])
            .await;
        let inbox = bob.ok(&["inbox"]).await;
        assert!(
            inbox.contains("    sealed, then encrypted in transit"),
            "{inbox}"
        );
        let whoami = bob.ok(&["whoami"]).await;
        assert!(
            whoami.contains(&format!("server:      {}", front.url())),
            "{whoami}"
        );
    }
);
