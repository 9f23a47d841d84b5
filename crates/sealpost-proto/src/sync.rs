//! The one way this project takes a `std::sync::Mutex`.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, going on through poisoning: every critical section in this project leaves its
/// data consistent at each step (no invariant spans an await or a panic point), so a panic in
/// another thread while it held the lock is no reason to fail this one too.
pub fn lock<T: ?Sized>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
