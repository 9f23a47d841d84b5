//! Cross-node notifications on PostgreSQL: every write that another node's streams must hear of
//! queues a `NOTIFY` in its transaction (the `notify!` macro), and each node's [`Store::feed`]
//! listens and hands the payloads to its hub. On SQLite there is one node, and the handlers wake
//! its hub themselves.

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::PgListener;

use uuid::Uuid;

use super::{Db, Store};
use crate::hub::Hub;

/// The PostgreSQL channel the nodes share.
pub(super) const CHANNEL: &str = "sealpost";
pub(super) const NOTIFY: &str = "SELECT pg_notify($1, $2)";

/// Queues a notification in a PostgreSQL transaction: sent at its commit, or not at all.
pub(super) async fn queue(conn: &mut sqlx::PgConnection, payload: &str) -> Result<(), sqlx::Error> {
    sqlx::query(NOTIFY)
        .bind(CHANNEL)
        .bind(payload)
        .execute(conn)
        .await?;
    Ok(())
}

/// The newest seq of each of these mailboxes (the NATS hub's poll).
const MAILBOX_HEADS_PG: &str = "SELECT id, last_seq FROM users WHERE id = ANY($1)";
/// Which of these sessions are no longer live: revoked, expired, or gone with their account.
const ENDED_SESSIONS_PG: &str = "SELECT v.id FROM UNNEST($1::uuid[]) AS v(id) \
     WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = v.id AND s.revoked_at IS NULL \
     AND s.expires_at > $2)";

impl Store {
    /// The newest `seq` of each mailbox given (PostgreSQL; none on SQLite, which has one node
    /// and no NATS hub).
    pub async fn mailbox_heads(&self, mailboxes: &[Uuid]) -> Result<Vec<(Uuid, i64)>, sqlx::Error> {
        match &self.db {
            Db::Postgres(pool) if !mailboxes.is_empty() => {
                sqlx::query_as(MAILBOX_HEADS_PG)
                    .bind(mailboxes)
                    .fetch_all(pool)
                    .await
            }
            _ => Ok(Vec::new()),
        }
    }

    /// Which of `sessions` are no longer live at `now` (PostgreSQL; none on SQLite).
    pub async fn ended_sessions(
        &self,
        sessions: &[Uuid],
        now: i64,
    ) -> Result<Vec<Uuid>, sqlx::Error> {
        match &self.db {
            Db::Postgres(pool) if !sessions.is_empty() => {
                sqlx::query_scalar(ENDED_SESSIONS_PG)
                    .bind(sessions)
                    .bind(now)
                    .fetch_all(pool)
                    .await
            }
            _ => Ok(Vec::new()),
        }
    }

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
