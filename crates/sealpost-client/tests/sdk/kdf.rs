//! PROTOCOL §2.1: a client refuses a weak or odd `kdf` from `prelogin` before deriving anything
//! from the password, against a hostile server that answers only `prelogin`.

use std::sync::{Arc, Mutex};

use sealpost_client::{Client, Error, KdfProgress, MemoryKeystore};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;

/// A server that answers every request with `body` (200, JSON), for as long as the test runs.
async fn hostile_server(body: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                // Read the request head and its body (prelogin's is small).
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let Ok(n) = socket.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&request);
                    if let Some(head_end) = text.find("\r\n\r\n") {
                        let length = text[..head_end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if request.len() >= head_end + 4 + length {
                            break;
                        }
                    }
                }
                let answer = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes()).await;
            });
        }
    });
    url
}

#[tokio::test]
async fn weak_or_odd_parameters_are_refused_before_deriving() {
    let salt16 = sealpost_crypto::b64::encode(&[7u8; 16]);
    let salt15 = sealpost_crypto::b64::encode(&[7u8; 15]);
    let cases = [
        ("argon2id13", salt16.as_str(), 1u64, 67_108_864u64),
        ("argon2id13", salt16.as_str(), 2, 8_192),
        ("argon2id13", salt16.as_str(), 11, 67_108_864),
        ("argon2id13", salt16.as_str(), 2, 2_147_483_648),
        ("argon2i13", salt16.as_str(), 2, 67_108_864),
        ("argon2id13", salt15.as_str(), 2, 67_108_864),
    ];
    for (alg, salt, opslimit, memlimit) in cases {
        let body = serde_json::json!({"kdf": {"alg": alg, "salt": salt, "opslimit": opslimit, "memlimit": memlimit}});
        let url = hostile_server(body.to_string()).await;
        let client = Client::new(&url, MemoryKeystore::new());
        let derived = Arc::new(Mutex::new(Vec::<KdfProgress>::new()));
        let seen = Arc::clone(&derived);
        client.set_kdf_observer(move |p| seen.lock().unwrap().push(p));

        let login = client.login("alice@example.test", "password", None).await;
        assert!(
            matches!(login, Err(Error::InvalidKdf(_))),
            "{alg} {opslimit} {memlimit}: {login:?}"
        );
        let register = client
            .register("alice@example.test", "password", Default::default())
            .await;
        assert!(
            matches!(register, Err(Error::InvalidKdf(_))),
            "{alg} {opslimit} {memlimit}: {register:?}"
        );
        assert!(
            derived.lock().unwrap().is_empty(),
            "derived from {alg} {opslimit} {memlimit}"
        );
    }

    // The same server with sound parameters: the client does derive (and then fails on the
    // login answer, which this server does not speak).
    let body = serde_json::json!({"kdf": {"alg": "argon2id13", "salt": salt16, "opslimit": 2, "memlimit": 67_108_864}});
    let url = hostile_server(body.to_string()).await;
    let client = Client::new(&url, MemoryKeystore::new());
    let derived = Arc::new(Mutex::new(Vec::<KdfProgress>::new()));
    let seen = Arc::clone(&derived);
    client.set_kdf_observer(move |p| seen.lock().unwrap().push(p));
    assert!(client
        .login("alice@example.test", "password", None)
        .await
        .is_err());
    let events = derived.lock().unwrap().clone();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0], KdfProgress::Started);
}
