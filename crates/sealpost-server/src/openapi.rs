//! The OpenAPI description, made exact. utoipa derives the operations and the schemas from the
//! routes and their types; this module adds what follows from each route's shape (every route can
//! shed load and refuse a foreign web origin, a bearer route can answer 401, a JSON body can be refused with 400, 413 or 415, a
//! rate-limited route can answer 429), the §4 error body for every error, and the constraints
//! that `validate` enforces (canonical base64url of a fixed length, the envelope sizes, UUIDs,
//! email plausibility, the KDF bounds, key versions, paging), so that a request the document calls
//! valid is one the server accepts, and the other way round. schemathesis checks both directions
//! in CI (`scripts/schemathesis`).

use serde_json::{json, Value};

use sealpost_proto::error_code;

use crate::config::kdf_bounds;

/// Operations that answer 429 (per-address, per-email, per-account or failed-login limits, and a
/// full mailbox). Every call that checks `current_auth_key` counts its misses as failed logins.
const RATE_LIMITED: &[(&str, &str)] = &[
    ("post", "/v1/accounts"),
    ("put", "/v1/account/password"),
    ("put", "/v1/account/recovery"),
    ("post", "/v1/keys/rotate"),
    ("post", "/v1/account/delete"),
    ("post", "/v1/auth/recover"),
    ("post", "/v1/auth/prelogin"),
    ("post", "/v1/auth/login"),
    ("post", "/v1/auth/refresh"),
    ("post", "/v1/messages"),
    ("get", "/v1/users"),
    ("get", "/v1/users/{user_id}"),
    ("get", "/v1/users/{user_id}/keys"),
    ("get", "/v1/users/{user_id}/keys/{key_version}"),
];

/// What a field of a request body must be, as `validate` checks it.
#[derive(Debug, Clone, Copy)]
enum Shape {
    /// Canonical base64url of exactly this many bytes.
    Bytes(usize),
    /// An X25519 public key: 32 bytes, not of small order.
    PublicKey,
    /// A sealed envelope: 88 + 256·k bytes (k ≥ 1), at most `--max-ciphertext`.
    Envelope,
    Uuid,
    Email,
    /// A key version: 1 or more.
    KeyVersion,
    Alg,
    OpsLimit,
    MemLimit,
    /// At most 100 characters.
    DeviceName,
}

/// Every constrained field of every request body: (schema, property, shape). A test checks that
/// each names a real property, and that every string or integer property of a request is here
/// or among the free ones.
const FIELDS: &[(&str, &str, Shape)] = &[
    ("RegisterRequest", "email", Shape::Email),
    ("RegisterRequest", "auth_key", Shape::Bytes(32)),
    ("RegisterRequest", "wrapped_account_key", Shape::Bytes(72)),
    ("RegisterRequest", "public_key", Shape::PublicKey),
    ("RegisterRequest", "wrapped_secret_key", Shape::Bytes(72)),
    ("KdfWire", "alg", Shape::Alg),
    ("KdfWire", "salt", Shape::Bytes(16)),
    ("KdfWire", "opslimit", Shape::OpsLimit),
    ("KdfWire", "memlimit", Shape::MemLimit),
    ("RecoveryWire", "auth_key", Shape::Bytes(32)),
    ("RecoveryWire", "wrapped_account_key", Shape::Bytes(72)),
    (
        "ChangePasswordRequest",
        "current_auth_key",
        Shape::Bytes(32),
    ),
    ("ChangePasswordRequest", "auth_key", Shape::Bytes(32)),
    (
        "ChangePasswordRequest",
        "wrapped_account_key",
        Shape::Bytes(72),
    ),
    ("SetRecoveryRequest", "current_auth_key", Shape::Bytes(32)),
    ("RecoverRequest", "email", Shape::Email),
    ("RecoverRequest", "recovery_auth_key", Shape::Bytes(32)),
    ("RotateRequest", "current_auth_key", Shape::Bytes(32)),
    ("RotateRequest", "public_key", Shape::PublicKey),
    ("RotateRequest", "key_version", Shape::KeyVersion),
    ("RotateRequest", "wrapped_secret_key", Shape::Bytes(72)),
    ("DeleteRequest", "current_auth_key", Shape::Bytes(32)),
    ("PreloginRequest", "email", Shape::Email),
    ("LoginRequest", "email", Shape::Email),
    ("LoginRequest", "auth_key", Shape::Bytes(32)),
    ("LoginRequest", "device_name", Shape::DeviceName),
    ("SendRequest", "to", Shape::Uuid),
    ("SendRequest", "ciphertext", Shape::Envelope),
    ("SendRequest", "key_version", Shape::KeyVersion),
    ("SendRequest", "sender_key_version", Shape::KeyVersion),
    ("SenderCopyWire", "ciphertext", Shape::Envelope),
    ("SenderCopyWire", "key_version", Shape::KeyVersion),
];

/// The encodings of X25519 public keys of small order that the server refuses (PROTOCOL §2): the
/// points of order 1, 2, 4 and 8 and their non-canonical encodings (u + p, where it fits), each
/// with and without the ignored high bit. A test checks that the crate refuses each.
pub(crate) const SMALL_ORDER: [[u8; 32]; 7] = [
    [0; 32],
    {
        let mut one = [0; 32];
        one[0] = 1;
        one
    },
    [
        0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4,
        0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49,
        0xb8, 0x00,
    ],
    [
        0x5f, 0x9c, 0x95, 0xbc, 0xa3, 0x50, 0x8c, 0x24, 0xb1, 0xd0, 0xb1, 0x55, 0x9c, 0x83, 0xef,
        0x5b, 0x04, 0x44, 0x5c, 0xc4, 0x58, 0x1c, 0x8e, 0x86, 0xd8, 0x22, 0x4e, 0xdd, 0xd0, 0x9f,
        0x11, 0x57,
    ],
    high_ff(0xec),
    high_ff(0xed),
    high_ff(0xee),
];

/// `p - 1`, `p` and `p + 1` (p = 2^255 - 19): the first byte, then 0xff up to the top byte 0x7f.
const fn high_ff(first: u8) -> [u8; 32] {
    let mut b = [0xff; 32];
    b[0] = first;
    b[31] = 0x7f;
    b
}

/// The finished document, as JSON.
pub fn finish(doc: &utoipa::openapi::OpenApi, max_ciphertext: usize) -> Value {
    let mut doc = serde_json::to_value(doc).unwrap_or_else(|_| json!({}));
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        schemas.insert("ErrorBody".into(), error_body());
        for (schema, property, shape) in FIELDS {
            if let Some(p) = schemas
                .get_mut(*schema)
                .and_then(|s| s.pointer_mut(&format!("/properties/{property}")))
            {
                constrain(p, *shape, max_ciphertext);
            }
        }
    }
    if let Some(change) = doc.pointer_mut("/components/schemas/ChangePasswordRequest") {
        // Exactly one proof: the current password's (with a bearer token) or a recovery token.
        change["oneOf"] =
            json!([{"required": ["current_auth_key"]}, {"required": ["recovery_token"]}]);
        change["properties"]["recovery_token"] = json!({"type": "string",
            "description": "From `POST /v1/auth/recover` (no bearer token needed)."});
    }
    if let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, op) in item.iter_mut() {
                finish_operation(method, path, op);
            }
        }
    }
    if let Some(op) = doc.pointer_mut("/paths/~1v1~1stream/get") {
        websocket_upgrade(op);
    }
    if let Some(op) = doc.pointer_mut("/paths/~1v1~1messages/get") {
        page_parameters(op);
    }
    if let Some(params) = doc
        .pointer_mut("/paths/~1v1~1users/get/parameters")
        .and_then(Value::as_array_mut)
    {
        for p in params.iter_mut() {
            if p["name"] == "email" {
                p["required"] = json!(true);
                p["schema"] = json!({"type": "string"});
                constrain(&mut p["schema"], Shape::Email, max_ciphertext);
            }
        }
    }
    doc
}

/// `{"error":{"code","message","field"?}}` (PROTOCOL §4).
fn error_body() -> Value {
    use error_code::*;
    json!({
        "type": "object",
        "description": "Every error (PROTOCOL §4).",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "enum": [
                        INVALID_REQUEST, UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, CONFLICT,
                        STALE_KEY, PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE, RATE_LIMITED,
                        OVERLOADED, INTERNAL]},
                    "message": {"type": "string"},
                    "field": {"type": "string", "description": "The JSON field at fault, by its dotted path."}
                },
                "additionalProperties": false
            }
        },
        "additionalProperties": false
    })
}

fn finish_operation(method: &str, path: &str, op: &mut Value) {
    let Some(op) = op.as_object_mut() else {
        return;
    };
    let bearer = op
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|reqs| reqs.iter().any(|r| r.get("bearer").is_some()));
    let body = op.contains_key("requestBody");
    let limited = RATE_LIMITED.contains(&(method, path));
    let responses = op
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut();
    let Some(responses) = responses else {
        return;
    };
    // 403: a request from a web page of another origin (`web::same_origin`), on every route.
    let mut statuses = vec!["403", "500", "503"];
    if bearer {
        statuses.push("401");
    }
    if body {
        statuses.extend(["400", "413", "415"]);
    }
    if limited {
        statuses.push("429");
    }
    if path == "/metrics" {
        statuses.push("404");
    }
    for status in statuses {
        responses.entry(status).or_insert_with(|| json!({}));
    }
    for (status, response) in responses.iter_mut() {
        if status.starts_with('4') || status.starts_with('5') {
            error_response(status, response);
        }
    }
}

fn error_response(status: &str, response: &mut Value) {
    let error = json!({"$ref": "#/components/schemas/ErrorBody"});
    let schema = match response.pointer("/content/application~1json/schema") {
        // /readyz answers 503 with its own body when the database does not answer, and the §4
        // body when it sheds load.
        Some(own) if own != &error => json!({"anyOf": [own, error]}),
        _ => error,
    };
    response["content"] = json!({"application/json": {"schema": schema}});
    if response
        .get("description")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        response["description"] = json!(describe(status));
    }
    if status == "429" {
        response["headers"] = json!({"Retry-After": {
            "description": "Seconds to wait before trying again.",
            "required": true,
            "schema": {"type": "string", "pattern": "^[1-9][0-9]*$"}
        }});
    }
}

fn describe(status: &str) -> &'static str {
    match status {
        "400" => "invalid_request: the body or the query is wrong; `field` names the culprit",
        "401" => "unauthenticated: no, bad, expired or revoked credentials",
        "403" => "forbidden: the proof of the password (current_auth_key) is wrong, or the request comes from a web page of another origin (see --allowed-origin)",
        "404" => "not_found: does not exist, or is not the caller's",
        "409" => "conflict, or stale_key (a key version that is not the newest)",
        "413" => "payload_too_large: the body or a ciphertext is too large",
        "415" => "unsupported_media_type: the body must be sent as application/json",
        "429" => "rate_limited: retry after Retry-After seconds",
        "500" => "internal: the cause is logged, never answered",
        "503" => "overloaded: shed at once rather than queued; retry shortly",
        _ => "an error (PROTOCOL §4)",
    }
}

/// Base64url characters; `TAIL[n % 3]` is the class of the last character of `n` bytes' canonical
/// encoding, whose unused bits are zero.
const B64: &str = "[A-Za-z0-9_-]";
const TAIL: [&str; 3] = ["[A-Za-z0-9_-]", "[AQgw]", "[AEIMQUYcgkosw048]"];

/// The length of `n` bytes in base64url without padding, and the pattern of its canonical text
/// without anchors.
fn b64_of(n: usize) -> (usize, String) {
    let len = (n * 4).div_ceil(3);
    (len, format!("{B64}{{{}}}{}", len - 1, TAIL[n % 3]))
}

/// Characters that `str::trim` and `char::is_whitespace` treat as whitespace (Unicode
/// White_Space), and those that `char::is_control` calls control (Cc).
const WHITE: &str = r"\t\n\x0b\x0c\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000";
const CONTROL: &str = r"\x00-\x1f\x7f-\x9f";

fn constrain(p: &mut Value, shape: Shape, max_ciphertext: usize) {
    let keep = |p: &Value| p.get("description").cloned();
    let description = keep(p);
    let mut schema = match shape {
        Shape::Bytes(n) => {
            let (len, pattern) = b64_of(n);
            json!({"type": "string", "minLength": len, "maxLength": len,
                   "pattern": format!("^{pattern}$"), "contentEncoding": "base64url"})
        }
        Shape::PublicKey => {
            let (len, pattern) = b64_of(32);
            let small: Vec<String> = SMALL_ORDER
                .iter()
                .flat_map(|k| {
                    let mut high = *k;
                    high[31] |= 0x80;
                    [
                        sealpost_crypto::b64::encode(k),
                        sealpost_crypto::b64::encode(&high),
                    ]
                })
                .collect();
            json!({"type": "string", "minLength": len, "maxLength": len,
                   "pattern": format!("^{pattern}$"), "contentEncoding": "base64url",
                   "not": {"enum": small}})
        }
        Shape::Envelope => {
            // 88 + 256·k bytes: k = 3j + r (r = 1, 2, 3) is 768·j more bytes, 1024·j more
            // characters, than k = r, so three lengths and a repeat say it exactly.
            let sizes: Vec<usize> = (1..)
                .map(|k| 88 + 256 * k)
                .take_while(|&n| n <= max_ciphertext)
                .collect();
            let base: Vec<String> = [344, 600, 856].iter().map(|&n| b64_of(n).1).collect();
            let min = b64_of(344).0;
            let max = sizes.last().map_or(min, |&n| b64_of(n).0);
            json!({"type": "string", "minLength": min, "maxLength": max,
                   "pattern": format!("^(?:{B64}{{1024}})*(?:{})$", base.join("|")),
                   "contentEncoding": "base64url",
                   "description": format!("a sealed envelope (PROTOCOL §3): 88 + 256·k bytes, at most {max_ciphertext}")})
        }
        Shape::Uuid => json!({"type": "string", "format": "uuid",
            "pattern": "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"}),
        Shape::Email => {
            let other = format!("[^@{WHITE}{CONTROL}]");
            let domain_end = format!("[^@.{WHITE}{CONTROL}]");
            json!({"type": "string",
                "maxLength": 254,
                "pattern": format!("^[{WHITE}]*{other}+@{domain_end}(?:{other}*{domain_end})?[{WHITE}]*$"),
                "description": "local@domain, at most 254 bytes once trimmed; trimmed and its ASCII letters lowercased by the server"})
        }
        Shape::KeyVersion => {
            json!({"type": "integer", "minimum": 1, "maximum": i64::MAX})
        }
        Shape::Alg => json!({"type": "string", "enum": ["argon2id13"]}),
        Shape::OpsLimit => json!({"type": "integer",
            "minimum": kdf_bounds::MIN_OPS, "maximum": kdf_bounds::MAX_OPS}),
        Shape::MemLimit => json!({"type": "integer",
            "minimum": kdf_bounds::MIN_MEM, "maximum": kdf_bounds::MAX_MEM}),
        Shape::DeviceName => json!({"type": ["string", "null"], "maxLength": 100}),
    };
    if let (Some(d), Some(map)) = (description, schema.as_object_mut()) {
        map.entry("description").or_insert(d);
    }
    *p = schema;
}

/// `GET /v1/stream` is a WebSocket upgrade: the headers axum checks are required, and the
/// answers are 101 or a §4 error (authentication happens in the first frame, PROTOCOL §4.2).
fn websocket_upgrade(op: &mut Value) {
    let header = |name: &str, schema: Value, description: &str| {
        json!({"name": name, "in": "header", "required": true, "schema": schema,
               "description": description})
    };
    op["parameters"] = json!([
        header(
            "Upgrade",
            json!({"type": "string", "pattern": "^[Ww][Ee][Bb][Ss][Oo][Cc][Kk][Ee][Tt]$"}),
            "websocket"
        ),
        header(
            "Connection",
            json!({"type": "string", "pattern": "[Uu][Pp][Gg][Rr][Aa][Dd][Ee]"}),
            "a list naming Upgrade"
        ),
        header(
            "Sec-WebSocket-Version",
            json!({"type": "string", "enum": ["13"]}),
            "13"
        ),
        header(
            "Sec-WebSocket-Key",
            json!({"type": "string"}),
            "the client's nonce (RFC 6455)"
        ),
    ]);
    op["description"] = json!(
        "A WebSocket (RFC 6455). The first frame authenticates: \
         {\"type\":\"auth\",\"access_token\":\"…\",\"after\":<seq>} (PROTOCOL §4.2)."
    );
    if let Some(r) = op.get_mut("responses").and_then(Value::as_object_mut) {
        r.insert(
            "101".into(),
            json!({"description": "switching to the WebSocket protocol"}),
        );
    }
}

/// The paging query of `GET /v1/messages`, as one exploded object so that "`after` or `before`,
/// not both" can be said (PROTOCOL §4).
fn page_parameters(op: &mut Value) {
    let bound = |what: &str, min: i64| json!({"type": "integer", "minimum": min, "maximum": i64::MAX, "description": what});
    op["parameters"] = json!([{
        "name": "page",
        "in": "query",
        "required": false,
        "style": "form",
        "explode": true,
        "schema": {
            "type": "object",
            "properties": {
                "after": bound("entries with a larger seq, ascending (exclusive); the default, 0", 0),
                "before": bound("entries with a smaller seq, newest first (exclusive)", 1),
                "limit": {"type": "integer", "minimum": 1, "maximum": 200,
                          "description": "the page size, 50 by default"}
            },
            "additionalProperties": false,
            "not": {"required": ["after", "before"]}
        }
    }]);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Request properties that take any string: opaque tokens, which are looked up, never parsed
    /// (an unknown one is 401).
    const FREE: &[(&str, &str)] = &[
        ("ChangePasswordRequest", "recovery_token"),
        ("RefreshRequest", "refresh_token"),
    ];

    /// The schemas of request bodies (and of the objects nested in them).
    const REQUESTS: &[&str] = &[
        "RegisterRequest",
        "KdfWire",
        "RecoveryWire",
        "ChangePasswordRequest",
        "SetRecoveryRequest",
        "RecoverRequest",
        "RotateRequest",
        "DeleteRequest",
        "PreloginRequest",
        "LoginRequest",
        "RefreshRequest",
        "SendRequest",
        "SenderCopyWire",
    ];

    fn doc() -> Value {
        let (_, doc) = crate::routes();
        finish(&doc, 65_536)
    }

    #[test]
    fn every_constraint_names_a_real_property_and_every_request_field_is_constrained() {
        let doc = doc();
        let schemas = &doc["components"]["schemas"];
        for (schema, property, _) in FIELDS {
            assert!(
                schemas[schema]["properties"].get(property).is_some(),
                "{schema}.{property} is not in the document"
            );
        }
        for schema in REQUESTS {
            let properties = schemas[schema]["properties"]
                .as_object()
                .unwrap_or_else(|| panic!("{schema} has no properties"));
            for (name, p) in properties {
                let nested = p.get("$ref").is_some() || p.get("oneOf").is_some();
                let known = FIELDS.iter().any(|(s, n, _)| s == schema && n == name)
                    || FREE.contains(&(schema, name.as_str()));
                assert!(nested || known, "{schema}.{name} has no constraint");
            }
        }
    }

    #[test]
    fn every_operation_documents_its_errors_with_the_error_body() {
        let doc = doc();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                for status in ["403", "500", "503"] {
                    assert!(responses.contains_key(status), "{method} {path}: {status}");
                }
                if op.get("requestBody").is_some() {
                    for status in ["400", "413", "415"] {
                        assert!(responses.contains_key(status), "{method} {path}: {status}");
                    }
                }
                let bearer = op["security"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|r| r.get("bearer").is_some()));
                if bearer {
                    assert!(responses.contains_key("401"), "{method} {path}: 401");
                }
                for (status, r) in responses {
                    if status.as_str() >= "400" {
                        let text = r["content"]["application/json"]["schema"].to_string();
                        assert!(
                            text.contains("ErrorBody"),
                            "{method} {path} {status}: {text}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn base64_patterns_accept_canonical_text_only() {
        for n in [16, 32, 72, 344, 600] {
            let (len, _) = b64_of(n);
            let text = sealpost_crypto::b64::encode(&vec![0xa5; n]);
            assert_eq!(text.len(), len);
            // The last character's class is exactly the set whose unused bits are zero.
            let last = TAIL[n % 3];
            for c in B64_ALPHABET.chars() {
                let mut t = text.clone();
                t.pop();
                t.push(c);
                let canonical = sealpost_crypto::b64::decode(&t).is_ok();
                assert_eq!(class_has(last, c), canonical, "n = {n}, last {c}");
            }
        }
    }

    const B64_ALPHABET: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

    /// Whether a character class made of single characters and `x-y` ranges holds `c`.
    fn class_has(class: &str, c: char) -> bool {
        let inner: Vec<char> = class
            .trim_start_matches('[')
            .trim_end_matches(']')
            .chars()
            .collect();
        let mut i = 0;
        while i < inner.len() {
            if i + 2 < inner.len() && inner[i + 1] == '-' {
                if (inner[i]..=inner[i + 2]).contains(&c) {
                    return true;
                }
                i += 3;
            } else {
                if inner[i] == c {
                    return true;
                }
                i += 1;
            }
        }
        false
    }

    #[test]
    fn the_small_order_list_is_what_the_crate_refuses() {
        for k in SMALL_ORDER {
            let mut high = k;
            high[31] |= 0x80;
            assert!(sealpost_crypto::PublicKey::from_bytes(&k).is_err(), "{k:?}");
            assert!(
                sealpost_crypto::PublicKey::from_bytes(&high).is_err(),
                "{high:?}"
            );
        }
    }
}
