//! [`ApiError`]: what a call can fail with, and how a non-2xx answer is read as PROTOCOL §4's
//! error shape.

use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;
use serde::Deserialize;

use crate::transport::TransportError;

/// How much of an unexpected body an error message quotes.
pub(super) const EXCERPT_CHARS: usize = 300;

/// What a call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server answered with PROTOCOL §4's error shape (any non-2xx status).
    #[error(
        "{status} {code}: {message}{}",
        .field.as_deref().map(|f| format!(" (field `{f}`)")).unwrap_or_default()
    )]
    Server {
        status: u16,
        code: String,
        message: String,
        field: Option<String>,
        /// `Retry-After` in seconds, when the server sent one (429, 503).
        retry_after: Option<u64>,
    },
    /// Nothing was sent: the server's URL breaks the transport rule (PROTOCOL §7), or is not
    /// one.
    #[error(transparent)]
    Refused(#[from] TransportError),
    /// The request did not get an answer (connection refused, timeout, …).
    #[error("no answer from the server: {0}")]
    Transport(#[from] reqwest::Error),
    /// The server answered something that is not the protocol: a non-2xx without the error
    /// shape, another 2xx than the call's, or a body that does not fit. Says which, with an
    /// excerpt of the body.
    #[error("the server's answer is not the protocol: {0}")]
    Protocol(String),
}

impl ApiError {
    /// The HTTP status of a [`ApiError::Server`] error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Server { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The machine code of a [`ApiError::Server`] error (`stale_key`, `not_found`, …).
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Server { code, .. } => Some(code),
            _ => None,
        }
    }

    /// The JSON field at fault in a [`ApiError::Server`] error, as a dotted path.
    pub fn field(&self) -> Option<&str> {
        match self {
            ApiError::Server { field, .. } => field.as_deref(),
            _ => None,
        }
    }

    /// `Retry-After` in seconds of a [`ApiError::Server`] error, when sent.
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ApiError::Server { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Reads a non-2xx answer as §4's `{"error":{code,message,field}}`, or says it is not that.
pub(super) fn error_from(
    label: &str,
    status: StatusCode,
    headers: &HeaderMap,
    text: &str,
) -> ApiError {
    #[derive(Deserialize)]
    struct Envelope {
        error: Body,
    }
    #[derive(Deserialize)]
    struct Body {
        code: String,
        message: String,
        #[serde(default)]
        field: Option<String>,
    }
    match serde_json::from_str::<Envelope>(text) {
        Ok(Envelope { error }) => ApiError::Server {
            status: status.as_u16(),
            code: error.code,
            message: error.message,
            field: error.field,
            retry_after: headers
                .get(RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse().ok()),
        },
        Err(_) => ApiError::Protocol(format!(
            "{label}: {status} without the error shape: {}",
            excerpt(text)
        )),
    }
}

/// The start of a body, for an error message.
pub(super) fn excerpt(text: &str) -> String {
    if text.is_empty() {
        return "(empty body)".to_owned();
    }
    let mut chars = text.chars();
    let mut quoted: String = chars.by_ref().take(EXCERPT_CHARS).collect();
    if chars.next().is_some() {
        quoted.push('…');
    }
    quoted
}
