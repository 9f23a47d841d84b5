//! `POST /v1/accounts`, and the error shape and fault order of PROTOCOL §4 on a body.

use reqwest::Method;
use sealpost_client::api::{RawBody, RecoveryWrap};
use serde_json::json;

use crate::both;
use crate::helpers::*;

async fn count_users(app: &TestApp) -> i64 {
    app.sql_scalar("SELECT COUNT(*) FROM users", &[]).await
}

fn body(email: &str) -> serde_json::Value {
    let mut req = register_request(email, &random(32));
    req.recovery = Some(RecoveryWrap {
        auth_key: secret(32),
        wrapped_account_key: secret(72),
    });
    serde_json::to_value(&req).unwrap()
}

async fn expect_error(app: &TestApp, body: RawBody, status: u16, code: &str, field: Option<&str>) {
    let r = app
        .api()
        .raw(Method::POST, "/v1/accounts", body)
        .await
        .unwrap();
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.json["error"]["code"], code, "{}", r.text);
    assert!(r.json["error"]["message"]
        .as_str()
        .is_some_and(|m| !m.is_empty()));
    assert_eq!(r.json["error"]["field"].as_str(), field, "{}", r.text);
}

both!(registers_once_per_email, |app: TestApp| async move {
    let api = app.api();
    let email = "Alice.Example@Example.TEST ";
    let r = api
        .raw(Method::POST, "/v1/accounts", RawBody::Json(body(email)))
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.json["key_version"], 1);
    uuid::Uuid::parse_str(r.json["user_id"].as_str().unwrap()).unwrap();
    // The same address, other case and spaces: taken.
    expect_error(
        &app,
        RawBody::Json(body("alice.example@example.test")),
        409,
        "conflict",
        Some("email"),
    )
    .await;
    assert_eq!(count_users(&app).await, 1);
});

both!(
    bad_bodies_get_the_error_shape_and_change_nothing,
    |app: TestApp| async move {
        let set = |path: &str, value: serde_json::Value| {
            let mut b = body("bob@example.test");
            let mut target = &mut b;
            let parts: Vec<&str> = path.split('.').collect();
            for p in &parts[..parts.len() - 1] {
                target = target.get_mut(*p).unwrap();
            }
            target[parts[parts.len() - 1]] = value;
            RawBody::Json(b)
        };
        let cases: Vec<(RawBody, &str)> = vec![
            (set("kdf.opslimit", json!(1)), "kdf.opslimit"),
            (set("kdf.opslimit", json!(11)), "kdf.opslimit"),
            (set("kdf.memlimit", json!(8 * 1024 * 1024)), "kdf.memlimit"),
            (set("kdf.memlimit", json!(2_147_483_648u64)), "kdf.memlimit"),
            (set("kdf.alg", json!("argon2i13")), "kdf.alg"),
            (
                set("kdf.salt", json!(sealpost_crypto::b64::encode(&[1; 15]))),
                "kdf.salt",
            ),
            (set("kdf.opslimit", json!("3")), "kdf.opslimit"),
            (set("kdf.colour", json!("red")), "kdf.colour"),
            (set("email", json!("not an email")), "email"),
            (
                set("auth_key", json!(sealpost_crypto::b64::encode(&[1; 31]))),
                "auth_key",
            ),
            (set("auth_key", json!("AAAA=")), "auth_key"),
            (
                set(
                    "wrapped_account_key",
                    json!(sealpost_crypto::b64::encode(&[1; 71])),
                ),
                "wrapped_account_key",
            ),
            (
                set("wrapped_secret_key", json!("+/+/")),
                "wrapped_secret_key",
            ),
            (
                set("public_key", json!(sealpost_crypto::b64::encode(&[9; 31]))),
                "public_key",
            ),
            (set("recovery.auth_key", json!(7)), "recovery.auth_key"),
            (
                set(
                    "recovery.wrapped_account_key",
                    json!(sealpost_crypto::b64::encode(&[1; 73])),
                ),
                "recovery.wrapped_account_key",
            ),
            (set("nickname", json!("bob")), "nickname"),
        ];
        for (b, field) in cases {
            expect_error(&app, b, 400, "invalid_request", Some(field)).await;
        }
        // A missing field is named.
        let mut b = body("bob@example.test");
        b.as_object_mut().unwrap().remove("auth_key");
        expect_error(
            &app,
            RawBody::Json(b),
            400,
            "invalid_request",
            Some("auth_key"),
        )
        .await;
        // Unknown fields are reported before any other fault, wherever they stand.
        let mut b = body("bob@example.test");
        b["email"] = json!("nope");
        b["zzz"] = json!(1);
        expect_error(&app, RawBody::Json(b), 400, "invalid_request", Some("zzz")).await;
        // Not JSON; not an object; not sent as JSON.
        let text = |ct: Option<&str>, body: &str| RawBody::Text {
            content_type: ct.map(str::to_owned),
            body: body.into(),
        };
        expect_error(
            &app,
            text(Some("application/json"), "{not json"),
            400,
            "invalid_request",
            None,
        )
        .await;
        expect_error(
            &app,
            text(Some("application/json"), "[1,2]"),
            400,
            "invalid_request",
            None,
        )
        .await;
        expect_error(
            &app,
            text(Some("text/plain"), "{}"),
            415,
            "unsupported_media_type",
            None,
        )
        .await;
        expect_error(&app, text(None, "{}"), 415, "unsupported_media_type", None).await;
        // A body far over the limit.
        let huge = format!("{{\"email\":\"{}\"}}", "a".repeat(400_000));
        expect_error(
            &app,
            text(Some("application/json"), &huge),
            413,
            "payload_too_large",
            None,
        )
        .await;
        assert_eq!(
            count_users(&app).await,
            0,
            "a refused registration wrote something"
        );
    }
);

both!(
    small_order_public_keys_are_refused,
    |app: TestApp| async move {
        let vectors = vectors();
        for hex in vectors["small_order_public_keys"].as_array().unwrap() {
            let bytes = from_hex(hex.as_str().unwrap());
            let mut b = body("carol@example.test");
            b["public_key"] = json!(sealpost_crypto::b64::encode(&bytes));
            expect_error(
                &app,
                RawBody::Json(b),
                400,
                "invalid_request",
                Some("public_key"),
            )
            .await;
        }
        assert_eq!(count_users(&app).await, 0);
    }
);

both!(plaintext_is_refused_first, |app: TestApp| async move {
    let mut b = body("dave@example.test");
    b["plaintext"] = json!("Hello");
    b["kdf"]["opslimit"] = json!(1);
    let r = app
        .api()
        .raw(Method::POST, "/v1/accounts", RawBody::Json(b))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json["error"]["field"], "plaintext");
    assert!(r.json["error"]["message"]
        .as_str()
        .unwrap()
        .contains("client"));
});

both!(
    registration_is_rate_limited_per_address,
    |app: TestApp| async move {
        let backend = app.backend;
        app.stop().await;
        let mut args = test_args();
        args.rate_per_address = 3;
        let app = TestApp::spawn_with(backend, args).await.unwrap();
        for i in 0..3 {
            let r = app
                .api()
                .raw(
                    Method::POST,
                    "/v1/accounts",
                    RawBody::Json(body(&format!("u{i}@example.test"))),
                )
                .await
                .unwrap();
            assert_eq!(r.status, 201, "{}", r.text);
        }
        let r = app
            .api()
            .raw(
                Method::POST,
                "/v1/accounts",
                RawBody::Json(body("u9@example.test")),
            )
            .await
            .unwrap();
        assert_eq!(r.status, 429, "{}", r.text);
        assert_eq!(r.json["error"]["code"], "rate_limited");
        let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "{retry}");
        app.stop().await;
    }
);

pub fn vectors() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../sealpost-crypto/tests/vectors/protocol-v1.json"
    );
    let fallback = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/vectors/protocol-v1.json"
    );
    let text = std::fs::read_to_string(path)
        .or_else(|_| std::fs::read_to_string(fallback))
        .expect("vectors");
    serde_json::from_str(&text).unwrap()
}

pub fn from_hex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect()
}
