//! `--retention-days`: a background task that deletes mailbox entries older than N days, in
//! small batches (one transaction each, then a rest as long as it took), so that sends wait at
//! most one batch and a long backlog takes at most half of the database's time.
//! Its clock is given, so that a test sets the time instead of waiting for it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::state::AppState;
use crate::store::Store;

/// Entries deleted per transaction.
pub const BATCH: i64 = 500;

const DAY_MS: i64 = 24 * 3600 * 1000;

/// The retention job of one node.
#[derive(Debug, Clone)]
pub struct Retention {
    store: Store,
    metrics: Arc<Metrics>,
    days: u32,
    clock: Clock,
}

impl Retention {
    /// Keeps `days` days of entries in the state's store, reading the time from `clock`.
    pub fn new(state: &AppState, days: u32, clock: Clock) -> Retention {
        Retention {
            store: state.store.clone(),
            metrics: Arc::clone(&state.metrics),
            days,
            clock,
        }
    }

    /// One pass: deletes every entry created before now − `days`, a batch per transaction;
    /// answers how many went.
    pub async fn run_once(&self) -> Result<u64, sqlx::Error> {
        let cutoff = self.clock.now_ms() - i64::from(self.days) * DAY_MS;
        let mut total = 0;
        loop {
            let started = Instant::now();
            let n = self.store.delete_older_than(cutoff, BATCH).await?;
            total += n;
            self.metrics
                .retention_deleted_entries
                .fetch_add(n, Ordering::Relaxed);
            if n < BATCH as u64 {
                return Ok(total);
            }
            // Rest as long as the batch took: the sends queued behind its write lock go first,
            // and a long backlog (the first pass, or a lowered --retention-days) takes at most
            // half of the database's time. Measured in docs: crates/sealpost-bench/ops.sh.
            tokio::time::sleep(started.elapsed()).await;
        }
    }

    /// Runs a pass every `interval` (the first at once) until the task is aborted.
    pub fn spawn(self, interval: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match self.run_once().await {
                    Ok(0) => {}
                    Ok(deleted) => {
                        tracing::info!(deleted, days = self.days, "retention deleted old entries")
                    }
                    Err(error) => tracing::warn!(%error, "retention pass failed; retrying later"),
                }
            }
        })
    }
}
