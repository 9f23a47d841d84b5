//! A whole answer, and how it is judged against what a call expects: the status it wants, and a
//! body that fits.

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

use super::error::{error_from, excerpt};
use super::ApiError;

/// A whole answer, before it is judged against what the call expects.
pub(super) struct Answer {
    /// `METHOD /path`, for error messages.
    pub(super) label: String,
    pub(super) status: StatusCode,
    pub(super) headers: HeaderMap,
    pub(super) text: String,
}

impl Answer {
    /// Passes any 2xx (or, with `expected`, only that status); otherwise the error it is.
    pub(super) fn expect(&self, expected: Option<StatusCode>) -> Result<(), ApiError> {
        if !self.status.is_success() {
            return Err(error_from(
                &self.label,
                self.status,
                &self.headers,
                &self.text,
            ));
        }
        match expected {
            Some(expected) if expected != self.status => Err(ApiError::Protocol(format!(
                "{}: expected {expected}, got {}: {}",
                self.label,
                self.status,
                excerpt(&self.text)
            ))),
            _ => Ok(()),
        }
    }

    pub(super) fn success(self) -> Result<Self, ApiError> {
        self.expect(None)?;
        Ok(self)
    }

    pub(super) fn empty(self, expected: StatusCode) -> Result<(), ApiError> {
        self.expect(Some(expected))
    }

    pub(super) fn json<T: DeserializeOwned>(self, expected: StatusCode) -> Result<T, ApiError> {
        self.expect(Some(expected))?;
        serde_json::from_str(&self.text).map_err(|e| {
            ApiError::Protocol(format!(
                "{}: {} with a body that does not fit ({e}): {}",
                self.label,
                self.status,
                excerpt(&self.text)
            ))
        })
    }
}
