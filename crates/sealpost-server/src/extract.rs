//! Our own extractors, so that every bad input gets PROTOCOL §4's error shape, with the faults
//! reported in the order §4 fixes: 401 (the `bearer` extractors run first), 415, 413, then 400
//! (JSON syntax, then `plaintext` and unknown fields, then each field); and the client's address.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::net::IpAddr;

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
        match req.extensions().get::<BodyFault>() {
            Some(BodyFault::TooLarge) => {
                return Err(ApiError::TooLarge {
                    message: format!(
                        "the request body is larger than {} bytes",
                        state.limits.max_body
                    )
                    .into(),
                    field: None,
                })
            }
            Some(BodyFault::Late) => {
                return Err(ApiError::invalid_body(format!(
                    "the body did not arrive within {} s",
                    state.config.body_timeout
                )))
            }
            Some(BodyFault::Broken) => {
                return Err(ApiError::invalid_body("the body could not be read"))
            }
            None => {}
        }
        // Buffered already by `buffer_body`, within the limit.
        let bytes = axum::body::to_bytes(req.into_body(), state.limits.max_body)
            .await
            .map_err(|_| ApiError::invalid_body("the body could not be read"))?;
        parse_json(&bytes, state.limits.max_ciphertext_encoded).map(JsonBody)
    }
}

/// Why a request's body was not buffered; reported by [`JsonBody`] in §4's order (after 401 and
/// 415), not by the middleware that found it.
#[derive(Debug, Clone, Copy)]
enum BodyFault {
    TooLarge,
    Late,
    Broken,
}

/// Reads the whole body of `req` (at most the largest body any route takes, within
/// `--body-timeout`) before the request is served, so that only requests whose body has arrived
/// take an in-flight slot. A body that is too large, too slow or broken is dropped and the fault
/// noted for the extractor; a request without a body passes untouched.
pub async fn buffer_body(state: &AppState, req: Request) -> Request {
    use axum::body::HttpBody as _;
    if req.body().size_hint().exact() == Some(0) {
        return req;
    }
    let (mut parts, body) = req.into_parts();
    let deadline = std::time::Duration::from_secs(state.config.body_timeout);
    let body =
        match tokio::time::timeout(deadline, axum::body::to_bytes(body, state.limits.max_body))
            .await
        {
            Ok(Ok(bytes)) => axum::body::Body::from(bytes),
            Ok(Err(e)) => {
                let too_large = std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
                let fault = if too_large {
                    BodyFault::TooLarge
                } else {
                    BodyFault::Broken
                };
                parts.extensions.insert(fault);
                axum::body::Body::empty()
            }
            Err(_) => {
                parts.extensions.insert(BodyFault::Late);
                axum::body::Body::empty()
            }
        };
    Request::from_parts(parts, body)
}

/// Reads a body that arrived whole: its type, or the 400 (or 413) to report, in §4's order.
pub(crate) fn parse_json<T: DeserializeOwned + Fields>(
    bytes: &[u8],
    max_ciphertext_encoded: usize,
) -> Result<T, ApiError> {
    // The fast path: a well-formed body parses straight into its type. Serde would also read an
    // object's fields, in order, from an array (found by fuzzing): no body has an array, so one
    // with an array goes to the diagnosis, which refuses it.
    if !has_array(bytes) {
        if let Ok(value) = serde_json::from_slice::<T>(bytes) {
            return Ok(value);
        }
    }
    Err(diagnose::<T>(bytes, max_ciphertext_encoded))
}

/// Whether JSON text has a `[` outside its strings.
fn has_array(bytes: &[u8]) -> bool {
    let (mut in_string, mut escaped) = (false, false);
    for &b in bytes {
        match (in_string, escaped, b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') | (false, _, b'"') => in_string = !in_string,
            (false, _, b'[') => return true,
            _ => {}
        }
    }
    false
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
    if let Some(path) = find_field(&value, "", &|_, inner| inner.is_array()) {
        return ApiError::invalid(path.clone(), format!("{path} cannot be a JSON array"));
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

/// The pairs of a query string, in order, refusing (400, PROTOCOL §4) one that is malformed, a
/// name that is not in `allowed`, and a name given twice.
pub fn query_pairs(query: &str, allowed: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
        .map_err(|_| ApiError::invalid_body("the query string is malformed"))?;
    for (i, (name, _)) in pairs.iter().enumerate() {
        if !allowed.contains(&name.as_str()) {
            return Err(ApiError::invalid(
                name.clone(),
                format!("unknown query parameter {name}"),
            ));
        }
        if pairs[..i].iter().any(|(earlier, _)| earlier == name) {
            return Err(ApiError::invalid(
                name.clone(),
                format!("{name} is given twice"),
            ));
        }
    }
    Ok(pairs)
}

/// The client's address, for rate limits: the connection's peer, or, when the peer is a proxy
/// listed in `--trusted-proxy`, the address its `X-Forwarded-For` (or `Forwarded`) names last
/// that is not itself a trusted proxy. Nobody else's forwarding headers are believed.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        Ok(ClientAddr(client_address(
            peer,
            &parts.headers,
            &state.config.trusted_proxy,
        )))
    }
}

fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[ipnet::IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    // Every hop the proxies appended, nearest last; the first untrusted one from the right is the
    // client. A header a client made up can only add entries to the left of what is believed.
    let mut hops: Vec<IpAddr> = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let Ok(text) = value.to_str() else { continue };
        hops.extend(text.split(',').filter_map(|h| parse_hop(h.trim())));
    }
    if hops.is_empty() {
        for value in headers.get_all(axum::http::header::FORWARDED) {
            let Ok(text) = value.to_str() else { continue };
            hops.extend(text.split(',').filter_map(|element| {
                element.split(';').find_map(|pair| {
                    let (name, value) = pair.trim().split_once('=')?;
                    name.eq_ignore_ascii_case("for")
                        .then(|| parse_hop(value.trim_matches('"')))?
                })
            }));
        }
    }
    hops.into_iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .unwrap_or(peer)
}

/// One hop: an address, with or without a port (`192.0.2.1:80`, `[2001:db8::1]:80`).
fn parse_hop(text: &str) -> Option<IpAddr> {
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<std::net::SocketAddr>().ok().map(|s| s.ip()))
        .or_else(|| text.strip_prefix('[')?.split(']').next()?.parse().ok())
}

#[cfg(test)]
mod body_tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        name: String,
        inner: Option<Inner>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        n: i64,
    }

    impl Fields for Body {
        const FIELDS: &'static [&'static str] = &["name", "inner"];
    }

    fn field(body: &str) -> Option<String> {
        match parse_json::<Body>(body.as_bytes(), 100) {
            Err(ApiError::Invalid { field, .. }) => Some(field.unwrap_or_default().into()),
            other => panic!("{body}: {other:?}"),
        }
    }

    #[test]
    fn arrays_are_refused_where_serde_would_read_an_object_from_them() {
        // The fuzz target `body` found a top-level array accepted as the object of its fields.
        assert_eq!(field(r#"["x"]"#).as_deref(), Some(""));
        assert_eq!(field(r#" [ "x", [1] ]"#).as_deref(), Some(""));
        assert_eq!(
            field(r#"{"name":"x","inner":[1]}"#).as_deref(),
            Some("inner")
        );
        assert_eq!(field(r#"{"name":["x"]}"#).as_deref(), Some("name"));
        // Brackets and escaped quotes inside strings are text.
        let ok = parse_json::<Body>(br#"{"name":"[\"[\\","inner":{"n":1}}"#, 100);
        assert_eq!(
            ok.map(|b| (b.name, b.inner.map(|i| i.n))).ok(),
            Some((r#"["[\"#.into(), Some(1)))
        );
    }
}

#[cfg(test)]
mod client_address_tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn only_a_trusted_proxy_is_believed() {
        let proxy: IpAddr = "10.0.0.5".parse().unwrap();
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/24".parse().unwrap()];
        let xff = headers(&[("x-forwarded-for", "1.2.3.4, 198.51.100.7, 10.0.0.9")]);
        // The rightmost hop that is not a trusted proxy.
        assert_eq!(
            client_address(proxy, &xff, &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        // From an untrusted peer the header changes nothing.
        let peer: IpAddr = "203.0.113.1".parse().unwrap();
        assert_eq!(client_address(peer, &xff, &trusted), peer);
        assert_eq!(client_address(proxy, &xff, &[]), proxy);
        // Forwarded, with a port and quotes.
        let fwd = headers(&[(
            "forwarded",
            "for=192.0.2.60;proto=http, for=\"[2001:db8::1]:4711\"",
        )]);
        assert_eq!(
            client_address(proxy, &fwd, &trusted),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        // A trusted proxy without the header is the client.
        assert_eq!(client_address(proxy, &HeaderMap::new(), &trusted), proxy);
    }
}
