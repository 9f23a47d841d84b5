//! The server's clock: Unix milliseconds, as the store keeps times.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}

/// A clock a job can be given: the system's, or one a test sets by hand (so that a test of
/// something that depends on the time, such as retention, neither sleeps nor races the clock).
#[derive(Debug, Clone, Default)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock that reads `ms` until it is set again.
    pub fn manual(ms: i64) -> Clock {
        Clock(Some(Arc::new(AtomicI64::new(ms))))
    }

    /// Now, in Unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            Some(ms) => ms.load(Ordering::SeqCst),
            None => now_ms(),
        }
    }

    /// Sets a manual clock (and every clone of it); the system clock ignores it.
    pub fn set_ms(&self, ms: i64) {
        if let Some(at) = &self.0 {
            at.store(ms, Ordering::SeqCst);
        }
    }
}
