//! Our own extractors, so that every bad input gets PROTOCOL §4's error shape, with the faults
//! reported in the order §4 fixes: 401 (the `bearer` extractors run first), 415, 413, then 400
//! (JSON syntax, then `plaintext` and unknown fields, then each field); and the client's address.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;
use crate::state::AppState;

/// The fields a JSON body may have, and those of its nested objects, so that unknown fields are
/// reported before any other fault of the body, whatever their place in it.
pub trait Fields {
    const FIELDS: &'static [&'static str];
    /// The fields of a nested object, by the name of the field that holds it.
    fn nested(_field: &str) -> Option<&'static [&'static str]> {
        None
    }
}

/// A strict JSON body.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T> FromRequest<AppState> for JsonBody<T>
where
    T: DeserializeOwned + Fields,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let is_json = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::UnsupportedMediaType);
        }
        let limit = state.limits.max_body;
        let bytes = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| ApiError::TooLarge {
                message: format!("the request body is larger than {limit} bytes").into(),
                field: None,
            })?;
        // The fast path: a well-formed body parses straight into its type.
        if let Ok(value) = serde_json::from_slice::<T>(&bytes) {
            return Ok(JsonBody(value));
        }
        Err(diagnose::<T>(&bytes, state.limits.max_ciphertext_encoded))
    }
}

/// Finds the fault to report for a body that did not parse, in §4's order.
fn diagnose<T: DeserializeOwned + Fields>(bytes: &[u8], max_ciphertext_encoded: usize) -> ApiError {
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return ApiError::invalid_body(format!("the body is not valid JSON: {e}")),
    };
    let Value::Object(map) = &value else {
        return ApiError::invalid_body("the body must be a JSON object");
    };
    if let Some(path) = find_key(&value, "plaintext") {
        return ApiError::invalid(
            path,
            "plaintext is never accepted: messages are sealed on the client (PROTOCOL §3) and only \
             the ciphertext is sent",
        );
    }
    for (name, inner) in map {
        if !T::FIELDS.contains(&name.as_str()) {
            return unknown(name);
        }
        if let (Some(allowed), Value::Object(inner)) = (T::nested(name), inner) {
            if let Some(bad) = inner.keys().find(|k| !allowed.contains(&k.as_str())) {
                return unknown(&format!("{name}.{bad}"));
            }
        }
    }
    if let Some(path) = oversized_ciphertext(&value, max_ciphertext_encoded) {
        return ApiError::TooLarge {
            message: "the ciphertext is too large".into(),
            field: Some(path.into()),
        };
    }
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(_) => ApiError::invalid_body("the body could not be read"),
        Err(e) => {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            let prefix = if path == "." {
                String::new()
            } else {
                format!("{path}.")
            };
            if let Some(name) = inner
                .strip_prefix("missing field `")
                .and_then(|s| s.split('`').next())
            {
                ApiError::invalid(
                    format!("{prefix}{name}"),
                    format!("the field {prefix}{name} is required"),
                )
            } else {
                let field = if path == "." {
                    None
                } else {
                    Some(path.clone().into())
                };
                ApiError::Invalid {
                    message: format!("{path}: {inner}").into(),
                    field,
                }
            }
        }
    }
}

fn unknown(path: &str) -> ApiError {
    ApiError::invalid(
        path.to_owned(),
        format!("unknown field {path}; see /v1/openapi.json for the fields"),
    )
}

/// The dotted path of the first field, at any depth of nested objects, that `hit` picks.
fn find_field(value: &Value, prefix: &str, hit: &dyn Fn(&str, &Value) -> bool) -> Option<String> {
    let Value::Object(map) = value else {
        return None;
    };
    for (name, inner) in map {
        let path = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        if hit(name, inner) {
            return Some(path);
        }
        if let Some(found) = find_field(inner, &path, hit) {
            return Some(found);
        }
    }
    None
}

fn find_key(value: &Value, key: &str) -> Option<String> {
    find_field(value, "", &|name, _| name == key)
}

fn oversized_ciphertext(value: &Value, max: usize) -> Option<String> {
    find_field(value, "", &|name, inner| {
        name == "ciphertext" && matches!(inner, Value::String(s) if s.len() > max)
    })
}

/// The client's address, for rate limits (unspecified when the server was not told it).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub std::net::IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let ip = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        Ok(ClientAddr(ip))
    }
}
