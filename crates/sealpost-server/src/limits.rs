//! Rate limits (per client address and per account, on the calls that guess at credentials) and
//! the bound on requests in flight.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::ServeArgs;
use crate::error::ApiError;

use sealpost_proto::sync::lock;

/// What is being limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Register,
    Prelogin,
    Login,
    Refresh,
    Recover,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Address(Action, IpAddr),
    Email(Action, String),
    FailedLogin(String),
}

/// A fixed window: at most `limit` events per `window`.
#[derive(Debug)]
struct Window {
    started: Instant,
    count: u32,
}

/// In-memory rate limits of one node. (Each node counts for itself: with N nodes behind a load
/// balancer an address gets at most N times the limit, still a hard bound.)
#[derive(Debug)]
pub struct RateLimiter {
    per_address: u32,
    per_email: u32,
    failed_logins: u32,
    windows: Mutex<HashMap<Key, Window>>,
}

const MINUTE: Duration = Duration::from_secs(60);
const FAILED_LOGIN_WINDOW: Duration = Duration::from_secs(300);
/// Past this many tracked keys, expired windows are swept, so memory stays bounded.
const SWEEP_AT: usize = 100_000;

impl RateLimiter {
    pub fn new(config: &ServeArgs) -> Self {
        RateLimiter {
            per_address: config.rate_per_address,
            per_email: config.rate_per_email,
            failed_logins: config.failed_logins,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one `action` from `address` (and for `email`, where one is named); 429 past a limit.
    pub fn check(
        &self,
        action: Action,
        address: IpAddr,
        email: Option<&str>,
    ) -> Result<(), ApiError> {
        self.hit(
            Key::Address(action, address),
            self.per_address,
            MINUTE,
            true,
        )?;
        if let Some(email) = email {
            if matches!(action, Action::Register | Action::Prelogin) {
                self.hit(
                    Key::Email(action, email.to_owned()),
                    self.per_email,
                    MINUTE,
                    true,
                )?;
            }
        }
        Ok(())
    }

    /// Refuses a login or recovery for an account that failed too often lately.
    pub fn check_failures(&self, email: &str) -> Result<(), ApiError> {
        self.hit(
            Key::FailedLogin(email.to_owned()),
            self.failed_logins,
            FAILED_LOGIN_WINDOW,
            false,
        )
    }

    /// Records a failed login or recovery for an account.
    pub fn failed(&self, email: &str) {
        let _ = self.hit(
            Key::FailedLogin(email.to_owned()),
            u32::MAX,
            FAILED_LOGIN_WINDOW,
            true,
        );
    }

    fn hit(&self, key: Key, limit: u32, window: Duration, count: bool) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut windows = lock(&self.windows);
        if windows.len() > SWEEP_AT {
            windows.retain(|_, w| now.duration_since(w.started) < FAILED_LOGIN_WINDOW);
        }
        let w = windows.entry(key).or_insert(Window {
            started: now,
            count: 0,
        });
        if now.duration_since(w.started) >= window {
            *w = Window {
                started: now,
                count: 0,
            };
        }
        if w.count >= limit {
            let retry_after = window
                .saturating_sub(now.duration_since(w.started))
                .as_secs()
                + 1;
            return Err(ApiError::RateLimited { retry_after });
        }
        if count {
            w.count += 1;
        }
        Ok(())
    }
}
