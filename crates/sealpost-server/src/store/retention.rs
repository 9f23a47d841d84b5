//! Retention: deleting the entries stored before a cutoff, the oldest first, a small batch per
//! transaction, each deletion raising its mailbox's version as every deletion does.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::{Db, Store};

/// SQLite (the whole write lock is held): the oldest entries before the cutoff (by the
/// `messages_created_at` index), at most `$2`, in one statement.
const DELETE_OLDEST_SQLITE: &str = "DELETE FROM messages WHERE id IN (SELECT id FROM messages \
     WHERE created_at < $1 ORDER BY created_at LIMIT $2) RETURNING mailbox";
/// PostgreSQL: the same entries are chosen first, so that their mailboxes' account rows can be
/// locked before any entry is (in id order, as send batches and account deletions lock them:
/// no deadlock with either), and then exactly those entries deleted.
const OLDEST_PG: &str = "SELECT id, mailbox FROM messages WHERE created_at < $1 \
     ORDER BY created_at LIMIT $2";
const LOCK_MAILBOXES_PG: &str = "SELECT id FROM users WHERE id = ANY($1) ORDER BY id FOR UPDATE";
const DELETE_IDS_PG: &str = "DELETE FROM messages WHERE id = ANY($1) RETURNING mailbox";
/// What a deletion does to its mailbox: its version moves and it holds fewer entries.
const DELETED_SOME: &str =
    "UPDATE users SET mailbox_rev = mailbox_rev + 1, entries = entries - $2 WHERE id = $1";

/// How many entries went from each mailbox, in id order.
fn per_mailbox(mailboxes: &[Uuid]) -> BTreeMap<Uuid, i64> {
    let mut counts = BTreeMap::new();
    for mailbox in mailboxes {
        *counts.entry(*mailbox).or_default() += 1;
    }
    counts
}

impl Store {
    /// Deletes at most `limit` entries created before `cutoff` (Unix ms), oldest first, in one
    /// transaction; answers how many went.
    pub async fn delete_older_than(&self, cutoff: i64, limit: i64) -> Result<u64, sqlx::Error> {
        match &self.db {
            Db::Sqlite(pool, _) => {
                let _writing = self.write_lock().await;
                let mut tx = pool.begin().await?;
                let deleted: Vec<Uuid> = sqlx::query_scalar(DELETE_OLDEST_SQLITE)
                    .bind(cutoff)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                for (mailbox, n) in per_mailbox(&deleted) {
                    sqlx::query(DELETED_SOME)
                        .bind(mailbox)
                        .bind(n)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(deleted.len() as u64)
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let oldest: Vec<(Uuid, Uuid)> = sqlx::query_as(OLDEST_PG)
                    .bind(cutoff)
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await?;
                if oldest.is_empty() {
                    return Ok(0);
                }
                let mailboxes: Vec<Uuid> =
                    per_mailbox(&oldest.iter().map(|(_, m)| *m).collect::<Vec<_>>())
                        .into_keys()
                        .collect();
                sqlx::query(LOCK_MAILBOXES_PG)
                    .bind(&mailboxes)
                    .fetch_all(&mut *tx)
                    .await?;
                let ids: Vec<Uuid> = oldest.iter().map(|(id, _)| *id).collect();
                // Another node's pass may have taken some of them meanwhile: count what went.
                let deleted: Vec<Uuid> = sqlx::query_scalar(DELETE_IDS_PG)
                    .bind(&ids)
                    .fetch_all(&mut *tx)
                    .await?;
                for (mailbox, n) in per_mailbox(&deleted) {
                    sqlx::query(DELETED_SOME)
                        .bind(mailbox)
                        .bind(n)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(deleted.len() as u64)
            }
        }
    }
}
