//! The one error type of the API; the only place that turns errors into HTTP responses
//! (PROTOCOL §4: `{"error":{"code","message","field"}}`).

use std::borrow::Cow;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

type Text = Cow<'static, str>;

/// Everything a handler can answer besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `invalid_request`: the body or query is wrong; `field` names the culprit when one is.
    #[error("{message}")]
    Invalid { message: Text, field: Option<Text> },
    /// 401 `unauthenticated`: no, bad, expired or revoked credentials.
    #[error("{0}")]
    Unauthenticated(Text),
    /// 403 `forbidden`: authenticated, but the proof of the password is wrong.
    #[error("{0}")]
    Forbidden(Text),
    /// 404 `not_found`: does not exist, or is not the caller's.
    #[error("{message}")]
    NotFound { message: Text, field: Option<Text> },
    /// 409 `conflict`.
    #[error("{message}")]
    Conflict { message: Text, field: Option<Text> },
    /// 409 `stale_key`: a key version that is not the newest.
    #[error("{message}")]
    StaleKey { message: Text, field: Text },
    /// 413 `payload_too_large`.
    #[error("{message}")]
    TooLarge { message: Text, field: Option<Text> },
    /// 415 `unsupported_media_type`.
    #[error("the body must be JSON, sent with Content-Type: application/json")]
    UnsupportedMediaType,
    /// 429 `rate_limited`, with `Retry-After` in seconds.
    #[error("too many requests; retry in {retry_after} s")]
    RateLimited { retry_after: u64 },
    /// 429 `rate_limited` on a field: this send cannot be taken now (`field` = `to`), without
    /// saying whether the recipient's mailbox is full or merely busy.
    #[error("this message cannot be taken now; retry in {retry_after} s")]
    Busy {
        field: &'static str,
        retry_after: u64,
    },
    /// 503 `overloaded`: shed at once rather than queued.
    #[error("the server is overloaded; retry shortly")]
    Overloaded,
    /// 500 `internal`: the cause goes to the log, never to the client.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn invalid(field: impl Into<Text>, message: impl Into<Text>) -> Self {
        ApiError::Invalid {
            message: message.into(),
            field: Some(field.into()),
        }
    }

    pub fn invalid_body(message: impl Into<Text>) -> Self {
        ApiError::Invalid {
            message: message.into(),
            field: None,
        }
    }

    pub fn not_found(message: impl Into<Text>) -> Self {
        ApiError::NotFound {
            message: message.into(),
            field: None,
        }
    }

    pub fn unauthenticated(message: impl Into<Text>) -> Self {
        ApiError::Unauthenticated(message.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Invalid { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Conflict { .. } | ApiError::StaleKey { .. } => StatusCode::CONFLICT,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited { .. } | ApiError::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        use sealpost_proto::error_code as code;
        match self {
            ApiError::Invalid { .. } => code::INVALID_REQUEST,
            ApiError::Unauthenticated(_) => code::UNAUTHENTICATED,
            ApiError::Forbidden(_) => code::FORBIDDEN,
            ApiError::NotFound { .. } => code::NOT_FOUND,
            ApiError::Conflict { .. } => code::CONFLICT,
            ApiError::StaleKey { .. } => code::STALE_KEY,
            ApiError::TooLarge { .. } => code::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType => code::UNSUPPORTED_MEDIA_TYPE,
            ApiError::RateLimited { .. } | ApiError::Busy { .. } => code::RATE_LIMITED,
            ApiError::Overloaded => code::OVERLOADED,
            ApiError::Internal(_) => code::INTERNAL,
        }
    }

    fn field(&self) -> Option<&str> {
        match self {
            ApiError::Invalid { field, .. }
            | ApiError::NotFound { field, .. }
            | ApiError::Conflict { field, .. }
            | ApiError::TooLarge { field, .. } => field.as_deref(),
            ApiError::StaleKey { field, .. } => Some(field),
            ApiError::Busy { field, .. } => Some(field),
            _ => None,
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        match e {
            sqlx::Error::PoolTimedOut => ApiError::Overloaded,
            e => ApiError::Internal(e.into()),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::Internal(e)
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = %format!("{cause:#}"), "internal error");
        }
        let status = self.status();
        let body = Body {
            error: Inner {
                code: self.code(),
                message: self.to_string(),
                field: self.field(),
            },
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let ApiError::RateLimited { retry_after } | ApiError::Busy { retry_after, .. } = self {
            if let Ok(v) = HeaderValue::from_str(&retry_after.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

/// Handlers answer `Result<T, ApiError>`.
pub type ApiResult<T> = Result<T, ApiError>;
