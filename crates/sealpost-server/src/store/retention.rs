//! Retention: deleting the entries stored before a cutoff, the oldest first, a small batch per
//! transaction, each deletion raising its mailbox's version as every deletion does.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::Store;

/// The oldest entries before the cutoff (by the `messages_created_at` index), at most `$2`.
const DELETE_OLDEST: &str = "DELETE FROM messages WHERE id IN (SELECT id FROM messages \
     WHERE created_at < $1 ORDER BY created_at LIMIT $2) RETURNING mailbox";
/// What a deletion does to its mailbox: its version moves and it holds fewer entries.
const DELETED_SOME: &str =
    "UPDATE users SET mailbox_rev = mailbox_rev + 1, entries = entries - $2 WHERE id = $1";

impl Store {
    /// Deletes at most `limit` entries created before `cutoff` (Unix ms), oldest first, in one
    /// transaction; answers how many went.
    pub async fn delete_older_than(&self, cutoff: i64, limit: i64) -> Result<u64, sqlx::Error> {
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let mailboxes: Vec<Uuid> = sqlx::query_scalar(DELETE_OLDEST)
                .bind(cutoff)
                .bind(limit)
                .fetch_all(&mut *tx)
                .await?;
            if mailboxes.is_empty() {
                return Ok(0);
            }
            // In id order, as send batches lock accounts, so that two nodes never deadlock.
            let mut per_mailbox: BTreeMap<Uuid, i64> = BTreeMap::new();
            for mailbox in &mailboxes {
                *per_mailbox.entry(*mailbox).or_default() += 1;
            }
            for (mailbox, n) in per_mailbox {
                sqlx::query(DELETED_SOME).bind(mailbox).bind(n).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            Ok(mailboxes.len() as u64)
        })
    }
}
