//! Cross-node notifications on PostgreSQL: every write that another node's streams must hear of
//! queues a `NOTIFY` in its transaction (the `notify!` macro), and each node's [`Store::feed`]
//! listens and hands the payloads to its hub. On SQLite there is one node, and the handlers wake
//! its hub themselves.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;

use super::{Db, Store};
use crate::hub::Hub;

/// The PostgreSQL channel the nodes share.
pub(super) const CHANNEL: &str = "sealpost";
pub(super) const NOTIFY: &str = "SELECT pg_notify($1, $2)";

impl Store {
    /// Feeds `hub` from PostgreSQL `LISTEN` until the hub stops (at once on SQLite). When the
    /// connection drops it reconnects, then wakes every stream so that each catches up from the
    /// last `seq` it sent.
    pub async fn feed(&self, hub: Arc<Hub>) {
        let Db::Postgres(pool) = &self.db else {
            return;
        };
        let mut backoff = Duration::from_millis(100);
        while !hub.is_stopping() {
            let mut listener = match PgListener::connect_with(pool).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open the notification connection; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            if let Err(e) = listener.listen(CHANNEL).await {
                tracing::warn!(error = %e, "cannot LISTEN; retrying");
                tokio::time::sleep(backoff).await;
                continue;
            }
            backoff = Duration::from_millis(100);
            // Whatever happened while we were not listening is in the store: catch up.
            hub.resync();
            loop {
                match listener.try_recv().await {
                    Ok(Some(n)) => hub.apply(n.payload()),
                    Ok(None) => {
                        tracing::warn!(
                            "the notification connection dropped; streams will catch up"
                        );
                        hub.resync();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "the notification connection failed; reconnecting");
                        break;
                    }
                }
                if hub.is_stopping() {
                    return;
                }
            }
        }
    }
}
