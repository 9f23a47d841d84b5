//! Mailboxes: what an entry is, pages, deletions, and the version the newest-page cache checks.
//! Sends are stored in batches (`super::batch`).

use uuid::Uuid;

use super::Store;
use crate::pages::MailboxVersion;

/// A send, after its shape was checked.
#[derive(Debug)]
pub struct NewMessage {
    pub sender: Uuid,
    pub recipient: Uuid,
    pub ciphertext: Vec<u8>,
    pub key_version: i64,
    pub sender_key_version: i64,
    pub sender_copy: Option<(Vec<u8>, i64)>,
    pub now: i64,
}

/// A mailbox entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: Uuid,
    pub mailbox: Uuid,
    pub seq: i64,
    pub sender: Uuid,
    pub recipient: Uuid,
    pub ciphertext: Vec<u8>,
    pub key_version: i64,
    pub sender_key_version: i64,
    pub created_at: i64,
}

/// Columns by index, in [`ENTRY_COLUMNS`]' order: a lookup by name per column and row was a
/// measurable part of an inbox request (see docs/PERFORMANCE.md).
impl<'r, R> sqlx::FromRow<'r, R> for Entry
where
    R: sqlx::Row,
    usize: sqlx::ColumnIndex<R>,
    Uuid: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    Vec<u8>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(r: &'r R) -> Result<Self, sqlx::Error> {
        Ok(Entry {
            id: r.try_get(0)?,
            mailbox: r.try_get(1)?,
            seq: r.try_get(2)?,
            sender: r.try_get(3)?,
            recipient: r.try_get(4)?,
            ciphertext: r.try_get(5)?,
            key_version: r.try_get(6)?,
            sender_key_version: r.try_get(7)?,
            created_at: r.try_get(8)?,
        })
    }
}

/// Why a send was refused.
#[derive(Debug)]
pub enum SendRefused {
    UnknownRecipient,
    SenderGone,
    /// A key version that is not the newest, by the field that named it.
    Stale(&'static str),
    /// The mailbox (of `to`, or the sender's own for its `sender_copy`) holds as many entries as
    /// it may.
    MailboxFull(&'static str),
}

/// Which way a page goes.
#[derive(Debug, Clone, Copy)]
pub enum Cursor {
    After(i64),
    Before(i64),
}

/// The columns of an entry, in the order its `FromRow` reads them.
macro_rules! entry_columns {
    () => {
        "id, mailbox, seq, sender, recipient, ciphertext, key_version, sender_key_version, created_at"
    };
}

const PAGE_AFTER: &str = concat!(
    "SELECT ",
    entry_columns!(),
    " FROM messages WHERE mailbox = $1 AND seq > $2 ORDER BY seq ASC LIMIT $3"
);
const PAGE_BEFORE: &str = concat!(
    "SELECT ",
    entry_columns!(),
    " FROM messages WHERE mailbox = $1 AND seq < $2 ORDER BY seq DESC LIMIT $3"
);
const SELECT_ENTRY: &str = concat!("SELECT ", entry_columns!(), " FROM messages WHERE id = $1");
const SELECT_VERSION: &str =
    "SELECT last_seq, mailbox_rev FROM users WHERE id = $1 AND deleted_at IS NULL";
const DELETE_ENTRY: &str = "DELETE FROM messages WHERE id = $1 AND mailbox = $2";
/// Every deletion from a mailbox raises its version, in the deletion's transaction.
const DELETED_ONE: &str =
    "UPDATE users SET mailbox_rev = mailbox_rev + 1, entries = entries - 1 WHERE id = $1";
/// Emptying a mailbox (deleting its account) raises its version too.
pub(super) const EMPTIED: &str =
    "UPDATE users SET mailbox_rev = mailbox_rev + 1, entries = 0 WHERE id = $1";

#[derive(sqlx::FromRow)]
struct VersionRow {
    last_seq: i64,
    mailbox_rev: i64,
}

impl Store {
    /// A page of a mailbox: ascending after a `seq`, or descending before one.
    pub async fn entries(
        &self,
        mailbox: Uuid,
        cursor: Cursor,
        limit: i64,
    ) -> Result<Vec<Entry>, sqlx::Error> {
        let (sql, bound) = match cursor {
            Cursor::After(s) => (PAGE_AFTER, s),
            Cursor::Before(s) => (PAGE_BEFORE, s),
        };
        on!(self, pool => {
            sqlx::query_as(sql).bind(mailbox).bind(bound).bind(limit).fetch_all(pool).await
        })
    }

    /// One entry by its id, whatever its mailbox (for the demo, which shows what was stored).
    pub async fn entry(&self, id: Uuid) -> Result<Option<Entry>, sqlx::Error> {
        on!(self, pool => sqlx::query_as(SELECT_ENTRY).bind(id).fetch_optional(pool).await)
    }

    /// The version of a live account's mailbox (see `pages`).
    pub async fn mailbox_version(
        &self,
        mailbox: Uuid,
    ) -> Result<Option<MailboxVersion>, sqlx::Error> {
        let row: Option<VersionRow> = on!(self, pool => {
            sqlx::query_as(SELECT_VERSION).bind(mailbox).fetch_optional(pool).await?
        });
        Ok(row.map(|r| MailboxVersion {
            last_seq: r.last_seq,
            rev: r.mailbox_rev,
        }))
    }

    /// Deletes an entry of the caller's own mailbox; `false` if there is none such.
    pub async fn delete_entry(&self, mailbox: Uuid, id: Uuid) -> Result<bool, sqlx::Error> {
        on_write!(self, pool => {
            let mut tx = pool.begin().await?;
            let n = sqlx::query(DELETE_ENTRY)
                .bind(id)
                .bind(mailbox)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if n > 0 {
                sqlx::query(DELETED_ONE).bind(mailbox).execute(&mut *tx).await?;
                tx.commit().await?;
            }
            Ok(n > 0)
        })
    }
}
