//! Messages (PROTOCOL §3, §4.1): sealing and sending (with a sender copy), fetching and paging,
//! opening with every check of §3.3 and the replay cache, deleting.

use std::time::{SystemTime, UNIX_EPOCH};

use sealpost_crypto::{check_replay, open, open_sender_copy, seal, seal_sender_copy, Payload};
use sealpost_proto::error_code;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::api::{self, MessagePage, Page as WirePage, SendRequest, SenderCopy};
use crate::{Client, Contact, ContactRef, Error};

/// The longest payload JSON that fits the server's default 65,536-byte ciphertext limit (§3.1).
pub const MAX_PAYLOAD_BYTES: usize = 65_279;

/// Options of [`Client::send_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SendOptions {
    /// Also seal the message to my own key, so that my other devices show what I sent (§3.4).
    /// Never sent for a note to self.
    pub sender_copy: bool,
    /// Ask the server for the contact's key before sealing and check it against the pin, so that
    /// a key the server swapped is reported ([`Error::KeyChanged`]) at once. Off, the message is
    /// sealed to the pinned key without asking (one round trip less; a swap gains the server
    /// nothing, but is noticed only at the next lookup) and a rotation is learnt from the
    /// server's 409 `stale_key`.
    pub verify_key: bool,
}

impl Default for SendOptions {
    fn default() -> Self {
        SendOptions {
            sender_copy: true,
            verify_key: true,
        }
    }
}

/// A message sent: the recipient's mailbox entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The recipient's entry.
    pub id: Uuid,
    pub seq: i64,
    pub created_at: OffsetDateTime,
    /// The payload's own id (the one the replay check keys on).
    pub payload_id: Uuid,
    pub to: Contact,
}

/// A mailbox entry's metadata, as the server stored it (still unchecked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub id: Uuid,
    pub seq: i64,
    pub from: Uuid,
    /// The sender's email as this client pinned it, if it did.
    pub from_email: Option<String>,
    /// An email the server claims for the sender while this keystore pins that email to another
    /// account (§6): the sender is unverified, and must never be shown under that name.
    pub from_claimed_email: Option<String>,
    pub to: Uuid,
    pub key_version: i64,
    pub sender_key_version: i64,
    pub created_at: OffsetDateTime,
}

/// A message opened and checked (§3.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The mailbox entry's id and `seq`.
    pub id: Uuid,
    pub seq: i64,
    /// The payload's id.
    pub payload_id: Uuid,
    pub from: Uuid,
    /// The sender's email as this client pinned it, if it did.
    pub from_email: Option<String>,
    /// An email the server claims for the sender while this keystore pins that email to another
    /// account (§6): the sender is unverified, and must never be shown under that name.
    pub from_claimed_email: Option<String>,
    pub to: Uuid,
    pub to_email: Option<String>,
    /// The sender's clock (the payload's `ts`).
    pub sent_at: OffsetDateTime,
    /// When the server stored the entry.
    pub stored_at: OffsetDateTime,
    pub text: String,
    /// A sender copy of what I sent (or a note to self), rather than a message to me.
    pub outgoing: bool,
}

/// One mailbox entry and what opening it gave: the message, or why it cannot be shown.
#[derive(Debug)]
pub struct Received {
    pub entry: Entry,
    pub message: Result<Message, Error>,
}

/// A page of the mailbox, opened.
#[derive(Debug)]
pub struct Page {
    /// In the order the server answered (ascending for `after`, newest first for `before`).
    pub messages: Vec<Received>,
    /// The cursor for the next page in the same direction.
    pub next: i64,
}

impl Client {
    /// Sends `text` to `to`, with a sender copy (none for a note to self).
    pub async fn send(&self, to: impl Into<ContactRef>, text: &str) -> Result<Sent, Error> {
        self.send_with(to, text, SendOptions::default()).await
    }

    /// Sends `text` to `to`, sealed (§3.2) to the key pinned for them. By default the contact's
    /// key is looked up first and checked against the pin like [`Client::lookup`] does
    /// ([`Error::KeyChanged`], and nothing sent, until [`Client::trust`]); with
    /// [`SendOptions::verify_key`] off, only a contact never seen before (or with a key change
    /// waiting for trust) is looked up. When the recipient has a newer key version than the
    /// pinned one (they rotated), the server refuses the send with 409 `stale_key`: the key is
    /// fetched again and the change reported as [`Error::KeyChanged`], never silently re-sealed
    /// to the new key; after `trust`, sending again seals to it.
    pub async fn send_with(
        &self,
        to: impl Into<ContactRef>,
        text: &str,
        options: SendOptions,
    ) -> Result<Sent, Error> {
        let to = to.into();
        self.unlocked(|_| ())?;
        let pinned = if options.verify_key {
            None
        } else {
            self.pinned_contact(&to)?
        };
        if let Some(pinned) = pinned {
            match self.send_to(pinned, text, options).await {
                // The pinned account is gone: a lookup tells whether the address is someone
                // else's by now (a contact change, never a silent switch).
                Err(Error::UnknownUser(_)) if matches!(to, ContactRef::Email(_)) => {}
                other => return other,
            }
        }
        let contact = self.lookup(to).await?;
        self.send_to(contact, text, options).await
    }

    /// Seals `text` to `contact`'s key and posts it.
    async fn send_to(
        &self,
        contact: Contact,
        text: &str,
        options: SendOptions,
    ) -> Result<Sent, Error> {
        let (my_id, newest) = self.unlocked(|u| (u.user_id, u.newest()))?;
        let (my_version, me) = newest.ok_or(Error::Locked)?;
        let payload = Payload::text(my_id, contact.user_id, now_ms(), text);
        if payload.to_json().len() > MAX_PAYLOAD_BYTES {
            return Err(Error::TooLong {
                max: MAX_PAYLOAD_BYTES,
            });
        }
        let to_self = contact.user_id == my_id;
        let request = SendRequest {
            to: contact.user_id,
            ciphertext: seal(&payload, &contact.public_key, &me),
            key_version: contact.key_version,
            sender_key_version: my_version,
            sender_copy: (options.sender_copy && !to_self).then(|| SenderCopy {
                ciphertext: seal_sender_copy(&payload, &me),
                key_version: my_version,
            }),
        };
        let request = &request;
        let sent = self
            .authed(|api| async move { api.send(request).await })
            .await;
        match sent {
            Ok(entry) => Ok(Sent {
                id: entry.id,
                seq: entry.seq,
                created_at: entry.created_at,
                payload_id: payload.id,
                to: contact,
            }),
            Err(Error::Api(e)) if e.code() == Some(error_code::STALE_KEY) => {
                if e.field() != Some("key_version") {
                    return Err(Error::OwnKeysChanged);
                }
                // The recipient has a newer key than the pinned one: show it as a key change.
                match self.lookup(contact.user_id).await {
                    Ok(_) => Err(Error::Api(e)),
                    Err(change) => Err(change),
                }
            }
            Err(Error::Api(e)) if e.status() == Some(404) && e.field() == Some("to") => {
                Err(Error::UnknownUser(contact.user_id.to_string()))
            }
            Err(e) => Err(e),
        }
    }

    /// The entries after `after` (exclusive), ascending, opened and checked; `limit` 1..=200
    /// (the server's default when `None`).
    pub async fn fetch(&self, after: i64, limit: Option<u32>) -> Result<Page, Error> {
        self.fetch_page(WirePage::After { after, limit }).await
    }

    /// The entries before `before` (exclusive), newest first, opened and checked;
    /// `i64::MAX` starts at the newest.
    pub async fn fetch_before(&self, before: i64, limit: Option<u32>) -> Result<Page, Error> {
        self.fetch_page(WirePage::Before { before, limit }).await
    }

    /// Every entry of the mailbox after `after`, ascending, page by page.
    pub async fn fetch_all(&self, after: i64) -> Result<Vec<Received>, Error> {
        let mut all = Vec::new();
        let mut cursor = after;
        loop {
            let page = self.fetch(cursor, Some(200)).await?;
            let done = page.messages.is_empty();
            cursor = page.next;
            all.extend(page.messages);
            if done {
                return Ok(all);
            }
        }
    }

    /// Deletes an entry of my mailbox.
    pub async fn delete(&self, id: Uuid) -> Result<(), Error> {
        self.authed(|api| async move { api.delete_message(id).await })
            .await
    }

    async fn fetch_page(&self, page: WirePage) -> Result<Page, Error> {
        self.unlocked(|_| ())?;
        let answer: MessagePage = self
            .authed(|api| async move { api.messages(page).await })
            .await?;
        let next = match page {
            WirePage::After { .. } => answer.next_after,
            WirePage::Before { .. } => answer.next_before,
        }
        .unwrap_or_default();
        let messages = self.open_entries(answer.messages).await?;
        Ok(Page { messages, next })
    }

    /// Opens entries of my mailbox, then applies the replay check to them in order, with one
    /// keystore update.
    pub(crate) async fn open_entries(
        &self,
        entries: Vec<api::Message>,
    ) -> Result<Vec<Received>, Error> {
        let mut opened = Vec::with_capacity(entries.len());
        for entry in &entries {
            opened.push(self.open_entry(entry).await);
        }
        let checked = self.modify(|stored| {
            entries
                .iter()
                .zip(opened)
                .map(|(entry, result)| {
                    result.and_then(|payload| {
                        let first = stored.seen.get(&payload.id).copied();
                        check_replay(entry.id, first)?;
                        // The same entry again, but at another place in the mailbox.
                        let at = stored.seen_seq.entry(entry.id).or_insert(entry.seq);
                        if *at != entry.seq {
                            return Err(Error::Replayed);
                        }
                        stored.seen.entry(payload.id).or_insert(entry.id);
                        Ok(payload)
                    })
                })
                .collect::<Vec<_>>()
        })?;
        let my_id = self.unlocked(|u| u.user_id)?;
        Ok(entries
            .into_iter()
            .zip(checked)
            .map(|(entry, result)| {
                let message = result.and_then(|payload| {
                    Ok(Message {
                        id: entry.id,
                        seq: entry.seq,
                        payload_id: payload.id,
                        from: payload.from,
                        from_email: self.known_email(payload.from),
                        from_claimed_email: self.claimed_email(payload.from),
                        to: payload.to,
                        to_email: self.known_email(payload.to),
                        sent_at: from_unix_ms(payload.ts).ok_or(Error::Malformed)?,
                        stored_at: entry.created_at,
                        text: payload.body,
                        outgoing: payload.from == my_id,
                    })
                });
                Received {
                    entry: Entry {
                        id: entry.id,
                        seq: entry.seq,
                        from: entry.from,
                        from_email: self.known_email(entry.from),
                        from_claimed_email: self.claimed_email(entry.from),
                        to: entry.to,
                        key_version: entry.key_version,
                        sender_key_version: entry.sender_key_version,
                        created_at: entry.created_at,
                    },
                    message,
                }
            })
            .collect())
    }

    /// §3.3 steps 1–4 for one entry: my key pair at the entry's `key_version`; the sender's
    /// trusted key at `sender_key_version` (or, for a sender copy, my own).
    async fn open_entry(&self, entry: &api::Message) -> Result<Payload, Error> {
        let (my_id, pair) =
            self.unlocked(|u| (u.user_id, u.pairs.get(&entry.key_version).cloned()))?;
        let pair = pair.ok_or(Error::MissingKeyVersion(entry.key_version))?;
        let now = now_ms();
        if entry.from == my_id {
            // A sender copy (or a note to self) is boxed by the same key pair it is sealed to.
            if entry.sender_key_version != entry.key_version {
                return Err(Error::Forged);
            }
            return Ok(open_sender_copy(
                &entry.ciphertext,
                &pair,
                my_id,
                entry.to,
                now,
            )?);
        }
        let sender_key = self
            .sender_key(entry.from, entry.sender_key_version)
            .await?;
        Ok(open(
            &entry.ciphertext,
            &pair,
            my_id,
            entry.from,
            &sender_key,
            now,
        )?)
    }
}

/// The client's clock in Unix milliseconds.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Unix milliseconds as a time, or `None` out of range.
fn from_unix_ms(ms: u64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}
