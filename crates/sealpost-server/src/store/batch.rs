//! Group commit: a batch of sends, logins and refreshes in one transaction
//! ([`Store::commit_batch`]). For the sends it locks the accounts involved, [`plan_batch`] checks
//! and numbers them (pure, shared by both backends), then one write per backend stores them with
//! one statement per table; the logins and refreshes are written by `super::sessions`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::OnceLock;

use rusqlite::{params_from_iter, ToSql, TransactionBehavior};
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;

use super::accounts::{credentials_pg, credentials_sqlite, verify, Credentials};
use super::mailbox::{Entry, NewMessage, SendRefused};
use super::sessions::{
    open_sessions_pg, open_sessions_sqlite, rotate_pg, rotate_sqlite, NewSession, Opened,
    Refreshed, Rotation, SessionToOpen,
};
use super::{direct, Db, Store};
use crate::hub::notification;

/// The accounts of a batch, locked in id order, so that two nodes' batches never deadlock.
const LOCK_ACCOUNTS_PG: &str = "SELECT id, key_version, last_seq, entries FROM users \
     WHERE id = ANY($1) AND deleted_at IS NULL ORDER BY id FOR UPDATE";

/// A group commit's work: sends, and the logins and refreshes that came with them.
#[derive(Debug, Default)]
pub struct Batch {
    pub sends: Vec<NewMessage>,
    pub opens: Vec<NewSession>,
    pub rotations: Vec<Rotation>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.sends.len() + self.opens.len() + self.rotations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn clear(&mut self) {
        self.sends.clear();
        self.opens.clear();
        self.rotations.clear();
    }
}

/// What a committed batch did, in the order of each list of [`Batch`].
#[derive(Debug)]
pub struct Committed {
    /// Per send: the recipient's entry, or why it was refused.
    pub sends: Vec<Result<Entry, SendRefused>>,
    /// Per login: its session, or `None` when no live account has that email and auth key.
    pub opened: Vec<Option<Opened>>,
    /// Per refresh: what the token led to.
    pub rotated: Vec<Refreshed>,
}

impl Store {
    /// Group commit: a batch of sends, logins and refreshes in one transaction, so one commit and
    /// one fsync for all of them. Nothing is acknowledged before the commit, and an error leaves
    /// nothing of the batch.
    ///
    /// Sends first: every account they involve is locked (PostgreSQL: in id order, so that
    /// concurrent batches on several nodes never deadlock; SQLite: its write lock, with `BEGIN
    /// IMMEDIATE`), then they are checked and numbered by `plan_batch` (a mailbox holds at most
    /// `max_entries`) and written with one statement per table; a refused send leaves no trace.
    /// Then the logins: the credentials of their emails read, each auth key compared in constant
    /// time, and a session opened for each that matched (one statement on PostgreSQL). Then each
    /// refresh. Accounts, then sessions, then tokens: the order every other transaction takes its
    /// locks in. On SQLite all of it runs on the caller's thread, blocking it until the commit.
    pub async fn commit_batch(&self, batch: &Batch, max_entries: i64) -> anyhow::Result<Committed> {
        let mut involved: Vec<Uuid> = batch
            .sends
            .iter()
            .flat_map(|m| [m.recipient, m.sender])
            .collect();
        involved.sort();
        involved.dedup();
        match &self.db {
            Db::Postgres(pool) if batch.sends.is_empty() && batch.rotations.is_empty() => {
                // Logins alone (a session writer's usual batch): the read needs no transaction,
                // and the one statement that writes commits by itself, two round trips instead
                // of four (BEGIN and COMMIT). Its join on live accounts still keeps a session
                // from an account deleted since the read.
                let mut conn = pool.acquire().await?;
                let (checked, opened) = open_logins_pg(&mut conn, &batch.opens).await?;
                Ok(committed(Vec::new(), checked, opened, Vec::new()))
            }
            Db::Postgres(pool) => {
                let mut tx = pool.begin().await?;
                let mut sends = Vec::new();
                if !batch.sends.is_empty() {
                    let accounts: Vec<AccountState> = sqlx::query_as(LOCK_ACCOUNTS_PG)
                        .bind(&involved)
                        .fetch_all(&mut *tx)
                        .await?;
                    let plan = plan_batch(&batch.sends, &accounts, max_entries);
                    if !plan.rows.is_empty() {
                        write_batch_pg(&mut tx, &plan, self.notifies()).await?;
                    }
                    sends = plan.results;
                }
                let (checked, opened) = open_logins_pg(&mut tx, &batch.opens).await?;
                let mut rotated = Vec::with_capacity(batch.rotations.len());
                for r in &batch.rotations {
                    rotated.push(rotate_pg(&mut tx, r, self.notifies()).await?);
                }
                tx.commit().await?;
                Ok(committed(sends, checked, opened, rotated))
            }
            Db::Sqlite(_, lock) => {
                let _writing = self.write_lock().await;
                // Blocks its thread until the commit: the writer's own (see `crate::batch`).
                lock.direct.with(|conn| {
                    // IMMEDIATE: the write lock first, so that the reads below cannot go stale.
                    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
                    let mut sends = Vec::new();
                    if !batch.sends.is_empty() {
                        let accounts = read_accounts_sqlite(&tx, &involved)?;
                        let plan = plan_batch(&batch.sends, &accounts, max_entries);
                        if !plan.rows.is_empty() {
                            write_batch_sqlite(&tx, &plan)?;
                        }
                        sends = plan.results;
                    }
                    let found = credentials_sqlite(&tx, &emails(&batch.opens))?;
                    let checked = check_logins(&batch.opens, |email| found.get(email));
                    let opened = open_sessions_sqlite(&tx, &to_open(&batch.opens, &checked))?;
                    let mut rotated = Vec::with_capacity(batch.rotations.len());
                    for r in &batch.rotations {
                        rotated.push(rotate_sqlite(&tx, r)?);
                    }
                    tx.commit()?;
                    Ok(committed(sends, checked, opened, rotated))
                })
            }
        }
    }
}

/// A batch's logins on PostgreSQL: their credentials in one read, their sessions in one write.
async fn open_logins_pg(
    conn: &mut PgConnection,
    logins: &[NewSession],
) -> Result<(Vec<Option<(Uuid, Credentials)>>, Vec<bool>), sqlx::Error> {
    if logins.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let found = credentials_pg(conn, &emails(logins)).await?;
    let checked = check_logins(logins, |email| found.get(email));
    let opened = open_sessions_pg(conn, &to_open(logins, &checked)).await?;
    Ok((checked, opened))
}

/// The emails of a batch's logins.
fn emails(logins: &[NewSession]) -> Vec<&str> {
    logins.iter().map(|s| s.email.as_str()).collect()
}

/// Each login's account, when the auth key presented matches its stored hash, with the id of the
/// session to open for it.
fn check_logins<'a>(
    logins: &[NewSession],
    found: impl Fn(&str) -> Option<&'a Credentials>,
) -> Vec<Option<(Uuid, Credentials)>> {
    logins
        .iter()
        .map(|login| {
            verify(login.presented.expose(), found(&login.email)).map(|c| (Uuid::now_v7(), c))
        })
        .collect()
}

/// The sessions to open: those of the logins that matched.
fn to_open<'a>(
    logins: &'a [NewSession],
    checked: &[Option<(Uuid, Credentials)>],
) -> Vec<SessionToOpen<'a>> {
    logins
        .iter()
        .zip(checked)
        .filter_map(|(login, checked)| {
            checked.as_ref().map(|(id, c)| SessionToOpen {
                id: *id,
                user_id: c.user_id,
                login,
            })
        })
        .collect()
}

fn committed(
    sends: Vec<Result<Entry, SendRefused>>,
    checked: Vec<Option<(Uuid, Credentials)>>,
    opened: Vec<bool>,
    rotated: Vec<Refreshed>,
) -> Committed {
    // `opened` has one flag per login that matched, in order.
    let mut opened = opened.into_iter();
    Committed {
        sends,
        opened: checked
            .into_iter()
            .map(|checked| {
                let (session_id, c) = checked?;
                opened.next().unwrap_or(false).then_some(Opened {
                    user_id: c.user_id,
                    session_id,
                    keyring: c.keyring,
                })
            })
            .collect(),
        rotated,
    }
}

/// An account as a batch reads it (locked): its newest key version and its mailbox's last seq.
#[derive(Debug, Clone, Copy, sqlx::FromRow)]
struct AccountState {
    id: Uuid,
    key_version: i64,
    last_seq: i64,
    /// Entries its mailbox holds.
    entries: i64,
}

/// What a batch of sends writes, worked out from its accounts' rows, which the transaction holds
/// locked.
struct BatchPlan {
    /// Per send, in order: its entry, or why it was refused.
    results: Vec<Result<Entry, SendRefused>>,
    /// The entries to insert (each send's, and its sender copy).
    rows: EntryColumns,
    /// The mailboxes whose last seq moved, with the new last seq and entry count.
    bumped: Vec<(Uuid, i64, i64)>,
}

/// Checks each send against its accounts as the sends before it in the batch left them, and
/// numbers its entries with the next seqs of their mailboxes. No I/O: both backends share it.
fn plan_batch(batch: &[NewMessage], accounts: &[AccountState], max_entries: i64) -> BatchPlan {
    // id -> (newest key version, last seq assigned, entries held)
    let mut state: HashMap<Uuid, (i64, i64, i64)> = accounts
        .iter()
        .map(|a| (a.id, (a.key_version, a.last_seq, a.entries)))
        .collect();
    let mut rows = EntryColumns::default();
    let mut results = Vec::with_capacity(batch.len());
    for m in batch {
        let (Some(&(recipient_version, _, recipient_entries)), sender) =
            (state.get(&m.recipient), state.get(&m.sender))
        else {
            results.push(Err(SendRefused::UnknownRecipient));
            continue;
        };
        let Some(&(sender_version, _, sender_entries)) = sender else {
            results.push(Err(SendRefused::SenderGone));
            continue;
        };
        let refusal = if m.key_version != recipient_version {
            Some("key_version")
        } else if m.sender_key_version != sender_version {
            Some("sender_key_version")
        } else if m
            .sender_copy
            .as_ref()
            .is_some_and(|(_, v)| *v != sender_version)
        {
            Some("sender_copy.key_version")
        } else {
            None
        };
        if let Some(field) = refusal {
            results.push(Err(SendRefused::Stale(field)));
            continue;
        }
        let with_copy = m.sender_copy.is_some() && m.sender != m.recipient;
        if recipient_entries >= max_entries {
            results.push(Err(SendRefused::MailboxFull("to")));
            continue;
        }
        if with_copy && sender_entries >= max_entries {
            results.push(Err(SendRefused::MailboxFull("sender_copy")));
            continue;
        }
        let mut next_seq = |mailbox: Uuid| {
            let account = state.entry(mailbox).or_insert((0, 0, 0));
            account.1 += 1;
            account.2 += 1;
            account.1
        };
        let entry = Entry {
            id: Uuid::now_v7(),
            mailbox: m.recipient,
            seq: next_seq(m.recipient),
            sender: m.sender,
            recipient: m.recipient,
            ciphertext: m.ciphertext.clone(),
            key_version: m.key_version,
            sender_key_version: m.sender_key_version,
            created_at: m.now,
        };
        rows.push(&entry);
        if let (Some((copy, v)), true) = (&m.sender_copy, m.sender != m.recipient) {
            let seq = next_seq(m.sender);
            rows.push(&Entry {
                id: Uuid::now_v7(),
                mailbox: m.sender,
                seq,
                sender: m.sender,
                recipient: m.recipient,
                ciphertext: copy.clone(),
                key_version: *v,
                sender_key_version: *v,
                created_at: m.now,
            });
        }
        results.push(Ok(entry));
    }
    let bumped = accounts
        .iter()
        .filter_map(|a| {
            let (_, last, entries) = state.get(&a.id).copied().unwrap_or_default();
            (last != a.last_seq).then_some((a.id, last, entries))
        })
        .collect();
    BatchPlan {
        results,
        rows,
        bumped,
    }
}

/// Mailbox entries as columns, for one multi-row insert.
#[derive(Default)]
struct EntryColumns {
    id: Vec<Uuid>,
    mailbox: Vec<Uuid>,
    seq: Vec<i64>,
    sender: Vec<Uuid>,
    recipient: Vec<Uuid>,
    ciphertext: Vec<Vec<u8>>,
    key_version: Vec<i64>,
    sender_key_version: Vec<i64>,
    created_at: Vec<i64>,
}

impl EntryColumns {
    fn push(&mut self, e: &Entry) {
        self.id.push(e.id);
        self.mailbox.push(e.mailbox);
        self.seq.push(e.seq);
        self.sender.push(e.sender);
        self.recipient.push(e.recipient);
        self.ciphertext.push(e.ciphertext.clone());
        self.key_version.push(e.key_version);
        self.sender_key_version.push(e.sender_key_version);
        self.created_at.push(e.created_at);
    }

    fn is_empty(&self) -> bool {
        self.id.is_empty()
    }

    fn len(&self) -> usize {
        self.id.len()
    }
}

/// A batch's writes on PostgreSQL in one statement, one round trip: the seqs, the entries (one
/// UNNEST insert) and the notifications (sent at commit).
const WRITE_BATCH_PG: &str = "WITH bump AS (UPDATE users SET last_seq = v.last, \
     entries = v.entries FROM UNNEST($1::uuid[], $2::int8[], $14::int8[]) AS v(id, last, entries) \
     WHERE users.id = v.id), \
     ins AS (INSERT INTO messages (id, mailbox, seq, sender, recipient, ciphertext, key_version, \
     sender_key_version, created_at) SELECT * FROM UNNEST($3::uuid[], $4::uuid[], $5::int8[], \
     $6::uuid[], $7::uuid[], $8::bytea[], $9::int8[], $10::int8[], $11::int8[])) \
     SELECT pg_notify($12, n) FROM UNNEST($13::text[]) AS n";

async fn write_batch_pg(
    tx: &mut Transaction<'_, Postgres>,
    plan: &BatchPlan,
    notify: bool,
) -> Result<(), sqlx::Error> {
    let ids: Vec<Uuid> = plan.bumped.iter().map(|b| b.0).collect();
    let last: Vec<i64> = plan.bumped.iter().map(|b| b.1).collect();
    let entries: Vec<i64> = plan.bumped.iter().map(|b| b.2).collect();
    let notes: Vec<String> = if notify {
        ids.iter().map(|id| notification::stored(*id)).collect()
    } else {
        Vec::new()
    };
    let rows = &plan.rows;
    sqlx::query(WRITE_BATCH_PG)
        .bind(&ids)
        .bind(&last)
        .bind(&rows.id)
        .bind(&rows.mailbox)
        .bind(&rows.seq)
        .bind(&rows.sender)
        .bind(&rows.recipient)
        .bind(&rows.ciphertext)
        .bind(&rows.key_version)
        .bind(&rows.sender_key_version)
        .bind(&rows.created_at)
        .bind(super::notify::CHANNEL)
        .bind(&notes)
        .bind(&entries)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The accounts of a batch on SQLite, which has no arrays: one placeholder per id.
fn read_accounts_sqlite(
    tx: &rusqlite::Transaction<'_>,
    involved: &[Uuid],
) -> rusqlite::Result<Vec<AccountState>> {
    let sql = SELECT_ACCOUNTS_SQLITE.get(involved.len());
    let mut read = direct::prepare(tx, &sql)?;
    let rows = read.query_map(params_from_iter(involved), |row| {
        Ok(AccountState {
            id: row.get(0)?,
            key_version: row.get(1)?,
            last_seq: row.get(2)?,
            entries: row.get(3)?,
        })
    })?;
    rows.collect()
}

/// A batch's writes on SQLite: one UPDATE for the seqs and one multi-row INSERT (a batch of at
/// most 256 sends binds at most 4,608 values, well under SQLite's limit).
fn write_batch_sqlite(tx: &rusqlite::Transaction<'_>, plan: &BatchPlan) -> rusqlite::Result<()> {
    let sql = BUMP_SEQS_SQLITE.get(plan.bumped.len());
    let mut values: Vec<&dyn ToSql> = Vec::with_capacity(4 * plan.bumped.len());
    for (id, last, entries) in &plan.bumped {
        values.extend([id as &dyn ToSql, last, entries]);
    }
    for (id, _, _) in &plan.bumped {
        values.push(id);
    }
    direct::prepare(tx, &sql)?.execute(params_from_iter(&values))?;
    let rows = &plan.rows;
    let sql = INSERT_ENTRIES_SQLITE.get(rows.len());
    let mut values: Vec<&dyn ToSql> = Vec::with_capacity(9 * rows.len());
    for i in 0..rows.len() {
        values.extend([
            &rows.id[i] as &dyn ToSql,
            &rows.mailbox[i],
            &rows.seq[i],
            &rows.sender[i],
            &rows.recipient[i],
            &rows.ciphertext[i],
            &rows.key_version[i],
            &rows.sender_key_version[i],
            &rows.created_at[i],
        ]);
    }
    direct::prepare(tx, &sql)?.execute(params_from_iter(&values))?;
    Ok(())
}

/// Sizes kept: a batch has at most 256 sends, so at most 512 entries and 512 accounts.
const SHAPES: usize = 513;

/// A SQLite statement whose placeholders follow a batch's size: built once per size and kept for
/// the life of the process, so that no send builds SQL.
struct Shaped {
    built: [OnceLock<Box<str>>; SHAPES],
    build: fn(usize) -> String,
}

impl Shaped {
    const fn new(build: fn(usize) -> String) -> Self {
        Shaped {
            built: [const { OnceLock::new() }; SHAPES],
            build,
        }
    }

    fn get(&'static self, n: usize) -> Cow<'static, str> {
        match self.built.get(n) {
            Some(cell) => Cow::Borrowed(cell.get_or_init(|| (self.build)(n).into())),
            None => Cow::Owned((self.build)(n)),
        }
    }
}

static SELECT_ACCOUNTS_SQLITE: Shaped = Shaped::new(|n| {
    format!(
        "SELECT id, key_version, last_seq, entries FROM users WHERE deleted_at IS NULL AND id IN ({})",
        placeholders(1, n)
    )
});

static BUMP_SEQS_SQLITE: Shaped = Shaped::new(|n| {
    // (id, last seq, entries) per mailbox: ?1 ?2 ?3, ?4 ?5 ?6, …
    let case = |value: usize| {
        (0..n)
            .map(|i| format!("WHEN ?{} THEN ?{}", 3 * i + 1, 3 * i + 1 + value))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        "UPDATE users SET last_seq = CASE id {} END, entries = CASE id {} END WHERE id IN ({})",
        case(1),
        case(2),
        placeholders(3 * n + 1, n)
    )
});

static INSERT_ENTRIES_SQLITE: Shaped = Shaped::new(|n| {
    let rows: Vec<String> = (0..n)
        .map(|i| format!("({})", placeholders(9 * i + 1, 9)))
        .collect();
    format!(
        "INSERT INTO messages (id, mailbox, seq, sender, recipient, ciphertext, key_version, \
         sender_key_version, created_at) VALUES {}",
        rows.join(", ")
    )
});

/// `?first, ?first+1, …` (`count` of them). SQLite numbers a `?N` parameter N; a `$N` one would
/// be numbered in the order of first appearance, which `CASE` above does not follow.
fn placeholders(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(from: u128, to: u128, key_version: i64, copy: bool) -> NewMessage {
        NewMessage {
            sender: Uuid::from_u128(from),
            recipient: Uuid::from_u128(to),
            ciphertext: vec![to as u8],
            key_version,
            sender_key_version: 1,
            sender_copy: copy.then(|| (vec![from as u8], 1)),
            now: 7,
        }
    }

    fn account(id: u128, key_version: i64, last_seq: i64) -> AccountState {
        AccountState {
            id: Uuid::from_u128(id),
            key_version,
            last_seq,
            entries: last_seq,
        }
    }

    #[test]
    fn a_batch_numbers_each_mailbox_on_from_its_last_seq_and_skips_refusals() {
        // Accounts 1 and 2 (key version 1, last seqs 10 and 20); 3 does not exist; 4 has rotated.
        let accounts = [account(1, 1, 10), account(2, 1, 20), account(4, 2, 40)];
        let batch = [
            send(1, 2, 1, false), // 2 gets 21
            send(1, 3, 1, false), // no such recipient
            send(1, 2, 2, false), // stale recipient key: takes no seq
            send(1, 2, 1, true),  // 2 gets 22, and 1 gets 11 for the sender copy
            send(3, 2, 1, false), // the sender is gone
            send(1, 4, 2, false), // 4 gets 41
            send(2, 2, 1, true),  // a note to self: one entry, 23
        ];
        let plan = plan_batch(&batch, &accounts, i64::MAX);
        let seqs: Vec<_> = plan
            .results
            .iter()
            .map(|r| match r {
                Ok(e) => Ok(e.seq),
                Err(SendRefused::UnknownRecipient) => Err("unknown"),
                Err(SendRefused::SenderGone) => Err("gone"),
                Err(SendRefused::Stale(field)) | Err(SendRefused::MailboxFull(field)) => {
                    Err(*field)
                }
            })
            .collect();
        assert_eq!(
            seqs,
            [
                Ok(21),
                Err("unknown"),
                Err("key_version"),
                Ok(22),
                Err("gone"),
                Ok(41),
                Ok(23)
            ]
        );
        let written: Vec<_> = plan
            .rows
            .mailbox
            .iter()
            .zip(&plan.rows.seq)
            .map(|(m, s)| (m.as_u128(), *s))
            .collect();
        assert_eq!(written, [(2, 21), (2, 22), (1, 11), (4, 41), (2, 23)]);
        // The sender copy is sealed to the sender's key version and holds the copy.
        assert_eq!(plan.rows.ciphertext[2], vec![1]);
        let bumped: Vec<_> = plan
            .bumped
            .iter()
            .map(|(id, s, n)| (id.as_u128(), *s, *n))
            .collect();
        assert_eq!(bumped, [(1, 11, 11), (2, 23, 23), (4, 41, 41)]);
    }

    #[test]
    fn a_full_mailbox_takes_nothing_more() {
        // 2's mailbox holds 20 entries, the most allowed; 1's holds 10.
        let accounts = [account(1, 1, 10), account(2, 1, 20)];
        let plan = plan_batch(&[send(1, 2, 1, false), send(2, 1, 1, true)], &accounts, 20);
        assert!(matches!(
            plan.results[0],
            Err(SendRefused::MailboxFull("to"))
        ));
        // 2 writes to 1 with a copy for itself: 1 has room, 2's own mailbox does not.
        assert!(matches!(
            plan.results[1],
            Err(SendRefused::MailboxFull("sender_copy"))
        ));
        assert!(plan.rows.is_empty());
        let eleven: Vec<_> = (0..11).map(|_| send(2, 1, 1, false)).collect();
        let plan = plan_batch(&eleven, &accounts, 20);
        let taken = plan.results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(taken, 10, "1 had room for 10 more");
    }

    #[test]
    fn shaped_statements_are_built_once_per_size() {
        let a = INSERT_ENTRIES_SQLITE.get(2);
        let b = INSERT_ENTRIES_SQLITE.get(2);
        assert!(matches!((&a, &b), (Cow::Borrowed(x), Cow::Borrowed(y)) if std::ptr::eq(*x, *y)));
        assert!(a.ends_with("VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9), (?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"));
        assert_eq!(
            BUMP_SEQS_SQLITE.get(1),
            "UPDATE users SET last_seq = CASE id WHEN ?1 THEN ?2 END, entries = CASE id WHEN ?1 THEN ?3 END WHERE id IN (?4)"
        );
    }
}
