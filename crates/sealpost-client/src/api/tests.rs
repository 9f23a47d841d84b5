//! Unit tests of the HTTP layer: serde of the wire types, error parsing, `Debug` without secrets,
//! and what goes on the wire, against a one-shot canned HTTP server.

use sealpost_proto::{Secret, SecretBytes};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use reqwest::header::{HeaderMap, RETRY_AFTER};

use super::error::{error_from, excerpt, EXCERPT_CHARS};
use super::*;

const USER: &str = "0191d3a0-7b1c-7cc4-8f7a-3a4a5b6c7d8e";
const PEER: &str = "0191d3a0-7b1c-7cc4-8f7a-3a4a5b6c7d8f";

fn uuid(text: &str) -> Uuid {
    text.parse().unwrap()
}

fn kdf() -> Kdf {
    Kdf {
        alg: "argon2id13".into(),
        salt: vec![7; 16],
        opslimit: 2,
        memlimit: 67_108_864,
    }
}

// --- serde ---------------------------------------------------------------------------------

#[test]
fn binary_fields_are_unpadded_base64url_and_round_trip() {
    let copy = SenderCopy {
        ciphertext: vec![0xfb, 0xff, 0xbf, 0x00],
        key_version: 3,
    };
    let value = serde_json::to_value(&copy).unwrap();
    assert_eq!(value, json!({"ciphertext": "-_-_AA", "key_version": 3}));
    assert_eq!(serde_json::from_value::<SenderCopy>(value).unwrap(), copy);
}

#[test]
fn non_canonical_base64_is_refused_with_a_clear_error() {
    for salt in ["AAAA==", "+/8", "AA AA", "A", "AB"] {
        let text = json!({"alg": "argon2id13", "salt": salt, "opslimit": 2, "memlimit": 1});
        let error = serde_json::from_value::<Kdf>(text).unwrap_err().to_string();
        assert!(error.contains("base64url"), "{salt}: {error}");
    }
}

#[test]
fn absent_options_are_left_out_and_read_back_as_none() {
    let change = ChangePasswordRequest {
        current_auth_key: None,
        recovery_token: Some("token".into()),
        kdf: kdf(),
        auth_key: vec![1; 32].into(),
        wrapped_account_key: vec![2; 72].into(),
    };
    let value = serde_json::to_value(&change).unwrap();
    assert!(value.get("current_auth_key").is_none());
    assert_eq!(
        serde_json::from_value::<ChangePasswordRequest>(value).unwrap(),
        change
    );

    let with_key = ChangePasswordRequest {
        current_auth_key: Some(vec![0xff; 2].into()),
        recovery_token: None,
        ..change
    };
    let value = serde_json::to_value(&with_key).unwrap();
    assert_eq!(value["current_auth_key"], "__8");
    assert!(value.get("recovery_token").is_none());
    assert_eq!(
        serde_json::from_value::<ChangePasswordRequest>(value).unwrap(),
        with_key
    );

    let login = LoginRequest {
        email: "a@b.c".into(),
        auth_key: SecretBytes::default(),
        device_name: None,
    };
    assert_eq!(
        serde_json::to_value(&login).unwrap(),
        json!({"email": "a@b.c", "auth_key": ""})
    );
}

#[test]
fn answers_parse_with_times_ids_and_the_deleted_default() {
    let message: Message = serde_json::from_value(json!({
        "id": USER, "seq": 9, "from": USER, "to": PEER, "ciphertext": "AQID",
        "key_version": 2, "sender_key_version": 1, "created_at": "2026-11-27T10:00:00.123Z",
    }))
    .unwrap();
    assert_eq!(message.ciphertext, [1, 2, 3]);
    assert_eq!(message.created_at.unix_timestamp(), 1_795_773_600);
    assert_eq!(message.created_at.millisecond(), 123);

    let user: UserInfo = serde_json::from_value(json!({
        "user_id": USER, "email": "a@b.c", "public_key": "AQID", "key_version": 1,
    }))
    .unwrap();
    assert!(!user.deleted);
    let gone: UserInfo = serde_json::from_value(json!({
        "user_id": USER, "email": null, "public_key": "AQID", "key_version": 1, "deleted": true,
    }))
    .unwrap();
    assert!(gone.deleted && gone.email.is_none());
}

// --- errors --------------------------------------------------------------------------------

#[test]
fn the_error_shape_becomes_a_server_error() {
    let mut headers = HeaderMap::new();
    headers.insert(RETRY_AFTER, "17".parse().unwrap());
    let text = r#"{"error":{"code":"rate_limited","message":"slow down","field":null}}"#;
    let error = error_from("POST /x", StatusCode::TOO_MANY_REQUESTS, &headers, text);
    assert_eq!(error.status(), Some(429));
    assert_eq!(error.code(), Some("rate_limited"));
    assert_eq!(error.field(), None);
    assert_eq!(error.retry_after(), Some(17));

    let text =
        r#"{"error":{"code":"stale_key","message":"refetch","field":"sender_copy.key_version"}}"#;
    let error = error_from("POST /x", StatusCode::CONFLICT, &HeaderMap::new(), text);
    assert_eq!(error.field(), Some("sender_copy.key_version"));
    assert_eq!(error.retry_after(), None);
    assert_eq!(
        error.to_string(),
        "409 stale_key: refetch (field `sender_copy.key_version`)"
    );
}

#[test]
fn anything_else_is_a_protocol_error_with_an_excerpt() {
    for text in [
        "<html>Bad gateway</html>",
        "",
        r#"{"error":"nope"}"#,
        r#"{"code":"x"}"#,
    ] {
        let error = error_from(
            "GET /v1/x",
            StatusCode::BAD_GATEWAY,
            &HeaderMap::new(),
            text,
        );
        let ApiError::Protocol(message) = &error else {
            panic!("{error:?}")
        };
        assert!(
            message.starts_with("GET /v1/x: 502 Bad Gateway"),
            "{message}"
        );
        assert_eq!(error.status(), None);
    }
    let long = "é".repeat(EXCERPT_CHARS + 1);
    assert_eq!(excerpt(&long).chars().count(), EXCERPT_CHARS + 1);
    assert!(excerpt(&long).ends_with('…'));
}

// --- Debug ---------------------------------------------------------------------------------

#[test]
fn debug_output_shows_no_secret() {
    let token = Secret::from("tok-SECRET");
    let key = SecretBytes::new(vec![0xa5; 32]); // prints as 165
    let wrapped = SecretBytes::new(vec![0xa5; 72]);
    let wrap = RecoveryWrap {
        auth_key: key.clone(),
        wrapped_account_key: wrapped.clone(),
    };
    let shown = [
        format!("{:?}", {
            let mut api = Api::new("http://localhost:1/");
            api.set_token(Some(token.clone()));
            api
        }),
        format!(
            "{:?}",
            RegisterRequest {
                email: "a@b.c".into(),
                kdf: kdf(),
                auth_key: key.clone(),
                wrapped_account_key: wrapped.clone(),
                public_key: vec![1; 32],
                wrapped_secret_key: vec![2; 72],
                recovery: Some(wrap.clone()),
            }
        ),
        format!(
            "{:?}",
            LoginRequest {
                email: "a@b.c".into(),
                auth_key: key.clone(),
                device_name: Some("laptop".into()),
            }
        ),
        format!(
            "{:?}",
            LoginResponse {
                user_id: uuid(USER),
                session_id: uuid(PEER),
                access_token: token.clone(),
                refresh_token: token.clone(),
                expires_in: 900,
                wrapped_account_key: wrapped.clone(),
                keys: KeyInfo {
                    public_key: vec![1; 32],
                    key_version: 1,
                    wrapped_secret_key: vec![2; 72],
                },
                previous_keys: vec![],
            }
        ),
        format!(
            "{:?}",
            TokenPair {
                access_token: token.clone(),
                refresh_token: token.clone(),
                expires_in: 900,
            }
        ),
        format!(
            "{:?}",
            ChangePasswordRequest {
                current_auth_key: Some(key.clone()),
                recovery_token: Some(token.clone()),
                kdf: kdf(),
                auth_key: key.clone(),
                wrapped_account_key: wrapped.clone(),
            }
        ),
        format!(
            "{:?}",
            SetRecoveryRequest {
                current_auth_key: key.clone(),
                recovery: wrap,
            }
        ),
        format!(
            "{:?}",
            RecoverResponse {
                recovery_token: token.clone(),
                wrapped_account_key: wrapped,
            }
        ),
        format!(
            "{:?}",
            RotateRequest {
                current_auth_key: key,
                public_key: vec![1; 32],
                key_version: 2,
                wrapped_secret_key: vec![2; 72],
            }
        ),
    ];
    for text in shown {
        assert!(!text.contains("SECRET") && !text.contains("165"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }
}

// --- on the wire ---------------------------------------------------------------------------

/// Answers one request with `answer` (a whole HTTP response head and body after the status
/// line's "HTTP/1.1 ") and hands back the request it got, as text.
async fn serve_once(answer: &str) -> (Api, tokio::task::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/", listener.local_addr().unwrap());
    let answer = answer.to_owned();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut request = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let read = socket.read(&mut chunk).await.unwrap();
            request.extend_from_slice(&chunk[..read]);
            let text = String::from_utf8_lossy(&request).into_owned();
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text[..end]
                    .lines()
                    .find_map(|line| {
                        let (name, value) = line.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if request.len() >= end + 4 + length {
                    break;
                }
            }
            assert!(read > 0, "the client hung up mid-request");
        }
        let (head, body) = answer.split_once("\n\n").unwrap_or((&answer, ""));
        let head = head.replace('\n', "\r\n");
        let response = format!(
            "HTTP/1.1 {head}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        socket.write_all(response.as_bytes()).await.unwrap();
        socket.shutdown().await.unwrap();
        String::from_utf8(request).unwrap()
    });
    (Api::new(&base), server)
}

fn with_token(mut api: Api) -> Api {
    api.set_token(Some(Secret::from("tok")));
    api
}

fn body_of(request: &str) -> serde_json::Value {
    serde_json::from_str(request.split_once("\r\n\r\n").unwrap().1).unwrap()
}

fn has_header(request: &str, name: &str, value: &str) -> bool {
    request.lines().any(|line| {
        line.split_once(':')
            .is_some_and(|(n, v)| n.eq_ignore_ascii_case(name) && v.trim() == value)
    })
}

#[tokio::test]
async fn lookups_by_email_encode_it_and_carry_the_bearer_token() {
    let (api, server) = serve_once(&format!(
        "200 OK\ncontent-type: application/json\n\n{}",
        json!({"user_id": USER, "email": "a+b@c.d", "public_key": "AQID", "key_version": 4})
    ))
    .await;
    let user = with_token(api).user_by_email("a+b@c.d").await.unwrap();
    assert_eq!((user.user_id, user.key_version), (uuid(USER), 4));
    let request = server.await.unwrap();
    assert!(
        request.starts_with("GET /v1/users?email=a%2Bb%40c.d HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        has_header(&request, "authorization", "Bearer tok"),
        "{request}"
    );
}

#[tokio::test]
async fn a_key_list_reads_every_version_in_order() {
    let (api, server) = serve_once(&format!(
        "200 OK\ncontent-type: application/json\n\n{}",
        json!({"user_id": USER, "keys": [
            {"key_version": 1, "public_key": "AQID"},
            {"key_version": 2, "public_key": "BAUG"},
        ], "deleted": true})
    ))
    .await;
    let list = with_token(api).user_keys(uuid(USER)).await.unwrap();
    assert_eq!(list.user_id, uuid(USER));
    assert!(list.deleted);
    let keys: Vec<_> = list
        .keys
        .iter()
        .map(|k| (k.key_version, k.public_key.clone()))
        .collect();
    assert_eq!(keys, [(1, vec![1, 2, 3]), (2, vec![4, 5, 6])]);
    let request = server.await.unwrap();
    assert!(
        request.starts_with(&format!("GET /v1/users/{USER}/keys HTTP/1.1\r\n")),
        "{request}"
    );
    assert!(has_header(&request, "authorization", "Bearer tok"));
}

#[tokio::test]
async fn unauthenticated_calls_send_no_token() {
    let (api, server) = serve_once(&format!(
        "200 OK\n\n{}",
        json!({"kdf": {"alg": "argon2id13", "salt": "AAAAAAAAAAAAAAAAAAAAAA", "opslimit": 3, "memlimit": 268_435_456}})
    ))
    .await;
    let kdf = with_token(api).prelogin("a@b.c").await.unwrap();
    assert_eq!(kdf.salt, [0; 16]);
    let request = server.await.unwrap();
    assert!(request.starts_with("POST /v1/auth/prelogin HTTP/1.1\r\n"));
    assert!(!request.to_ascii_lowercase().contains("authorization"));
    assert!(has_header(&request, "content-type", "application/json"));
    assert_eq!(body_of(&request), json!({"email": "a@b.c"}));
}

#[tokio::test]
async fn a_send_posts_base64_and_reads_the_201() {
    let (api, server) = serve_once(&format!(
        "201 Created\n\n{}",
        json!({"id": PEER, "seq": 1, "created_at": "2026-11-27T10:00:00Z"})
    ))
    .await;
    let sent = with_token(api)
        .send(&SendRequest {
            to: uuid(PEER),
            ciphertext: vec![0xff; 3],
            key_version: 1,
            sender_key_version: 2,
            sender_copy: None,
        })
        .await
        .unwrap();
    assert_eq!(sent.seq, 1);
    let request = server.await.unwrap();
    assert_eq!(
        body_of(&request),
        json!({"to": PEER, "ciphertext": "____", "key_version": 1, "sender_key_version": 2})
    );
}

#[tokio::test]
async fn another_success_status_than_the_calls_is_refused() {
    let (api, server) = serve_once(&format!(
        "200 OK\n\n{}",
        json!({"user_id": USER, "key_version": 1})
    ))
    .await;
    let request = RegisterRequest {
        email: "a@b.c".into(),
        kdf: kdf(),
        auth_key: vec![1; 32].into(),
        wrapped_account_key: vec![2; 72].into(),
        public_key: vec![3; 32],
        wrapped_secret_key: vec![4; 72],
        recovery: None,
    };
    let error = api.register(&request).await.unwrap_err();
    assert!(
        matches!(&error, ApiError::Protocol(m) if m.contains("expected 201 Created, got 200 OK")),
        "{error:?}"
    );
    server.await.unwrap();
}

#[tokio::test]
async fn errors_carry_status_code_field_and_retry_after() {
    let (api, server) = serve_once(&format!(
        "429 Too Many Requests\nretry-after: 30\ncontent-type: application/json\n\n{}",
        json!({"error": {"code": "rate_limited", "message": "wait"}})
    ))
    .await;
    let error = api
        .recover("a@b.c", &SecretBytes::new(vec![0xff; 2]))
        .await
        .unwrap_err();
    assert_eq!(error.status(), Some(429));
    assert_eq!(error.code(), Some("rate_limited"));
    assert_eq!(error.retry_after(), Some(30));
    let request = server.await.unwrap();
    assert_eq!(
        body_of(&request),
        json!({"email": "a@b.c", "recovery_auth_key": "__8"})
    );
}

#[tokio::test]
async fn no_content_calls_take_a_204() {
    let (api, server) = serve_once("204 No Content").await;
    with_token(api).logout().await.unwrap();
    let request = server.await.unwrap();
    assert!(request.starts_with("POST /v1/auth/logout HTTP/1.1\r\n"));
    assert!(has_header(&request, "authorization", "Bearer tok"));
}

#[tokio::test]
async fn pages_send_their_bounds_and_need_their_cursor() {
    let (api, server) = serve_once(&format!(
        "200 OK\n\n{}",
        json!({"messages": [], "next_before": 5})
    ))
    .await;
    let page = api
        .messages(Page::Before {
            before: 5,
            limit: Some(10),
        })
        .await
        .unwrap();
    assert_eq!((page.next_before, page.next_after), (Some(5), None));
    let request = server.await.unwrap();
    assert!(request.starts_with("GET /v1/messages?before=5&limit=10 HTTP/1.1\r\n"));

    let (api, server) = serve_once(&format!(
        "200 OK\n\n{}",
        json!({"messages": [], "next_before": 5})
    ))
    .await;
    let error = api.messages(Page::default()).await.unwrap_err();
    assert!(
        matches!(&error, ApiError::Protocol(m) if m.contains("next_after")),
        "{error:?}"
    );
    assert!(server
        .await
        .unwrap()
        .starts_with("GET /v1/messages?after=0 HTTP/1.1\r\n"));
}

#[tokio::test]
async fn raw_sends_anything_and_returns_everything() {
    let (api, server) = serve_once(&format!(
        "415 Unsupported Media Type\nx-probe: 1\n\n{}",
        json!({"error": {"code": "unsupported_media_type", "message": "send JSON"}})
    ))
    .await;
    let answer = api
        .raw(
            Method::POST,
            "v1/messages",
            RawBody::Text {
                content_type: Some("text/plain".into()),
                body: "hello".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(answer.status, 415);
    assert_eq!(answer.json["error"]["code"], "unsupported_media_type");
    assert_eq!(answer.headers["x-probe"], "1");
    let request = server.await.unwrap();
    assert!(request.starts_with("POST /v1/messages HTTP/1.1\r\n"));
    assert!(has_header(&request, "content-type", "text/plain"));
    assert!(request.ends_with("\r\n\r\nhello"));

    let (api, server) = serve_once("200 OK\n\nnot json").await;
    let answer = api
        .raw(Method::GET, "/metrics", RawBody::None)
        .await
        .unwrap();
    assert_eq!(
        (answer.json, answer.text.as_str()),
        (serde_json::Value::Null, "not json")
    );
    server.await.unwrap();
}

#[tokio::test]
async fn no_answer_is_a_transport_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let error = Api::new(&base).healthz().await.unwrap_err();
    assert!(matches!(error, ApiError::Transport(_)), "{error:?}");
}
