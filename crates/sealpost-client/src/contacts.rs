//! Contacts and trust (PROTOCOL §6): lookups, the key pinned on first use for each contact, the
//! key-change check on every later answer, [`Client::trust`], and safety numbers.

use std::fmt;

use sealpost_crypto::{safety_number, PublicKey};
use uuid::Uuid;

use crate::account::normalize_email;
use crate::api::{ApiError, UserInfo};
use crate::keystore::{AccountRecord, ContactRecord, PendingKey};
use crate::{Client, Error, KeyChange};

/// A user named by email or by id. `From<&str>` reads a UUID as an id and anything else as an
/// email.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ContactRef {
    Email(String),
    Id(Uuid),
}

impl From<&str> for ContactRef {
    fn from(text: &str) -> Self {
        match Uuid::try_parse(text.trim()) {
            Ok(id) => ContactRef::Id(id),
            Err(_) => ContactRef::Email(normalize_email(text)),
        }
    }
}

impl From<&String> for ContactRef {
    fn from(text: &String) -> Self {
        ContactRef::from(text.as_str())
    }
}

impl From<String> for ContactRef {
    fn from(text: String) -> Self {
        ContactRef::from(text.as_str())
    }
}

impl From<Uuid> for ContactRef {
    fn from(id: Uuid) -> Self {
        ContactRef::Id(id)
    }
}

impl fmt::Display for ContactRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ContactRef::Email(email) => f.write_str(email),
            ContactRef::Id(id) => write!(f, "{id}"),
        }
    }
}

/// A user and the key this client trusts for them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contact {
    pub user_id: Uuid,
    /// `None` for a deleted account.
    pub email: Option<String>,
    /// The newest trusted key version and key.
    pub key_version: i64,
    pub public_key: PublicKey,
    /// The safety number of my newest key and this key (60 digits).
    pub safety_number: String,
}

/// What `Client::pin` may accept besides a first key or the key already pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pin {
    /// Nothing else: any other key becomes the pending one (a key change).
    Check,
    /// Also the pending key, which the user has compared the safety number of.
    Trust,
}

/// The safety numbers of a contact: with the pinned key, and with a key waiting for trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyNumbers {
    pub user_id: Uuid,
    pub email: Option<String>,
    /// (version, safety number) of the newest pinned key.
    pub pinned: Option<(i64, String)>,
    /// (version, safety number) of a key the server offers that is not trusted yet.
    pub pending: Option<(i64, String)>,
}

/// A 60-digit safety number as 12 groups of 5 digits, for people to read aloud.
pub fn format_safety_number(number: &str) -> String {
    number
        .as_bytes()
        .chunks(5)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

impl Client {
    /// Looks a user up by email or id and checks the key the server hands out against the pin:
    /// pinned on first use; the same key as pinned is fine; any other answer is recorded as
    /// pending and is [`Error::KeyChanged`] until [`Client::trust`]. Looking myself up answers
    /// my own key from the keystore.
    pub async fn lookup(&self, contact: impl Into<ContactRef>) -> Result<Contact, Error> {
        self.fetch_and_pin(contact.into(), Pin::Check).await
    }

    /// Accepts the key the server now hands out for `contact` as the pinned one. A key waiting
    /// for trust (the one the key-change warning showed) is accepted only if it is still what
    /// the server hands out: if the server offers yet another key, that one becomes the pending
    /// key and this is [`Error::KeyChanged`] again, with its own safety number to compare.
    pub async fn trust(&self, contact: impl Into<ContactRef>) -> Result<Contact, Error> {
        self.fetch_and_pin(contact.into(), Pin::Trust).await
    }

    /// The safety numbers of `contact` (§6), after checking the server's current key against the
    /// pin (a new key shows up as `pending`).
    pub async fn safety_numbers(
        &self,
        contact: impl Into<ContactRef>,
    ) -> Result<SafetyNumbers, Error> {
        let contact = contact.into();
        let account = self.account()?;
        let user_id = match self.lookup(contact).await {
            Ok(c) => c.user_id,
            Err(Error::KeyChanged(change)) => change.user_id,
            Err(e) => return Err(e),
        };
        let me = my_newest(&account)?;
        let number = |key: &PublicKey| safety_number(account.user_id, &me, user_id, key);
        if user_id == account.user_id {
            return Ok(SafetyNumbers {
                user_id,
                email: Some(account.email.clone()),
                pinned: Some((0, number(&me))),
                pending: None,
            });
        }
        let record = self
            .load()?
            .contacts
            .get(&user_id)
            .cloned()
            .ok_or_else(|| Error::UnknownUser(user_id.to_string()))?;
        Ok(SafetyNumbers {
            user_id,
            email: record.email.clone(),
            pinned: record.newest().map(|(v, k)| (v, number(&k))),
            pending: record
                .pending
                .map(|p| (p.key_version, number(&p.public_key))),
        })
    }

    /// The contacts this keystore has pinned.
    pub fn contacts(&self) -> Result<Vec<(Uuid, ContactRecord)>, Error> {
        Ok(self.load()?.contacts.into_iter().collect())
    }

    // --- for opening ----------------------------------------------------------------------------

    /// The trusted public key of `user_id` at `version`, for checking a message it sent: the
    /// pinned one; an older version not seen before is fetched and pinned; a newer version than
    /// any pinned is a key change.
    pub(crate) async fn sender_key(&self, user_id: Uuid, version: i64) -> Result<PublicKey, Error> {
        let account = self.account()?;
        if user_id == account.user_id {
            return account
                .keys
                .iter()
                .find(|k| k.key_version == version)
                .map(|k| k.public_key)
                .ok_or(Error::MissingKeyVersion(version));
        }
        let record = self.load()?.contacts.get(&user_id).cloned();
        let Some(record) = record else {
            // First use: pin the newest key (and this version, if it is an older one).
            let newest = match self.fetch_user(&ContactRef::Id(user_id)).await {
                Ok(info) => Some(info),
                Err(Error::UnknownUser(_)) => None,
                Err(e) => return Err(e),
            };
            let info = match newest {
                Some(info) if info.key_version == version => info,
                other => {
                    let old = self.fetch_key(user_id, version).await?;
                    let old_key = PublicKey::from_bytes(&old.public_key)?;
                    if let Some(newest) = other {
                        let newest_key = PublicKey::from_bytes(&newest.public_key)?;
                        self.pin(&account, &newest, newest_key, Pin::Check)?;
                    }
                    self.modify(|stored| {
                        let record = stored
                            .contacts
                            .entry(user_id)
                            .or_insert_with(|| ContactRecord::new(old.email.clone()));
                        record.keys.entry(version).or_insert(old_key);
                    })?;
                    return Ok(old_key);
                }
            };
            let key = PublicKey::from_bytes(&info.public_key)?;
            return self
                .pin(&account, &info, key, Pin::Check)
                .map(|c| c.public_key);
        };
        if let Some(key) = record.keys.get(&version) {
            return Ok(*key);
        }
        let info = self.fetch_key(user_id, version).await?;
        let key = PublicKey::from_bytes(&info.public_key)?;
        let newest = record.newest().map_or(0, |(v, _)| v);
        if version > newest {
            // A version newer than any pinned: a key change until the user trusts it.
            let pinned = self.modify(|stored| {
                let record = stored.contacts.get_mut(&user_id)?;
                record.pending = Some(PendingKey {
                    key_version: version,
                    public_key: key,
                });
                record.newest()
            })?;
            return Err(key_change(&account, &info, pinned, key));
        }
        // An older version never seen before: pinned as it first comes.
        let key = self.modify(|stored| {
            stored
                .contacts
                .get_mut(&user_id)
                .map(|r| *r.keys.entry(version).or_insert(key))
                .unwrap_or(key)
        })?;
        Ok(key)
    }

    // --- for sending -----------------------------------------------------------------------------

    /// The key to seal to for `contact`, without asking the server: my own, or the newest pinned
    /// key of a contact with no key change waiting for trust. `None` when the server must be
    /// asked (never seen, named by an email two pins share, or a key change pending).
    pub(crate) fn pinned_contact(&self, contact: &ContactRef) -> Result<Option<Contact>, Error> {
        let stored = self.load()?;
        let Some(account) = &stored.account else {
            return Err(Error::SignedOut);
        };
        if let Some(me) = own_contact(account, contact) {
            return Ok(Some(me));
        }
        let found: Vec<_> = match contact {
            ContactRef::Id(id) => stored.contacts.get_key_value(id).into_iter().collect(),
            ContactRef::Email(email) => stored
                .contacts
                .iter()
                .filter(|(_, r)| r.email.as_deref() == Some(email.as_str()))
                .collect(),
        };
        let [(user_id, record)] = found[..] else {
            return Ok(None);
        };
        if record.pending.is_some() {
            return Ok(None);
        }
        record
            .newest()
            .map(|(version, key)| {
                contact_from(account, *user_id, record.email.clone(), version, key)
            })
            .transpose()
    }

    /// Forgets the email of a pinned contact whose account is gone (the address may belong to a
    /// new account now, which is another contact).
    pub(crate) fn forget_email(&self, user_id: Uuid) -> Result<(), Error> {
        self.modify(|stored| {
            if let Some(record) = stored.contacts.get_mut(&user_id) {
                record.email = None;
            }
        })
    }

    /// Looks up the email of a pinned contact (no network).
    pub(crate) fn known_email(&self, user_id: Uuid) -> Option<String> {
        let stored = self.load().ok()?;
        if let Some(account) = &stored.account {
            if account.user_id == user_id {
                return Some(account.email.clone());
            }
        }
        stored.contacts.get(&user_id)?.email.clone()
    }

    // --- steps ----------------------------------------------------------------------------------

    /// Looks `contact` up (myself: from the keystore) and pins (`Client::pin`) the key the server
    /// hands out.
    async fn fetch_and_pin(&self, contact: ContactRef, mode: Pin) -> Result<Contact, Error> {
        let account = self.account()?;
        if let Some(me) = own_contact(&account, &contact) {
            return Ok(me);
        }
        let info = self.fetch_user(&contact).await?;
        let key = PublicKey::from_bytes(&info.public_key)?;
        self.pin(&account, &info, key, mode)
    }

    /// Compares the server's newest key for a user with the pin: a first key is pinned, the
    /// pinned key is fine (a pending one is dropped), and with [`Pin::Trust`] so is the pending
    /// key, which replaces the pin from its version on. Anything else becomes the pending key
    /// and is [`Error::KeyChanged`].
    fn pin(
        &self,
        account: &AccountRecord,
        info: &UserInfo,
        key: PublicKey,
        mode: Pin,
    ) -> Result<Contact, Error> {
        let offered = (info.key_version, key);
        let verdict = self.modify(|stored| {
            let record = stored
                .contacts
                .entry(info.user_id)
                .or_insert_with(|| ContactRecord::new(info.email.clone()));
            if info.email.is_some() {
                record.email = info.email.clone();
            }
            let pinned = record.newest();
            let pending = record.pending.map(|p| (p.key_version, p.public_key));
            let accepted = pinned.is_none_or(|pinned| pinned == offered)
                || (mode == Pin::Trust && pending == Some(offered));
            if accepted {
                // A no-op unless the pending key replaces a pin at its version or later.
                record.keys.retain(|v, _| *v < offered.0);
                record.keys.insert(offered.0, key);
                record.pending = None;
                Ok(())
            } else {
                record.pending = Some(PendingKey {
                    key_version: offered.0,
                    public_key: key,
                });
                Err(pinned)
            }
        })?;
        match verdict {
            Ok(()) => contact_from(account, info.user_id, info.email.clone(), offered.0, key),
            Err(pinned) => Err(key_change(account, info, pinned, key)),
        }
    }

    async fn fetch_user(&self, contact: &ContactRef) -> Result<UserInfo, Error> {
        let answer = match contact {
            ContactRef::Email(email) => {
                self.authed(|api| async move { api.user_by_email(email).await })
                    .await
            }
            ContactRef::Id(id) => {
                let id = *id;
                self.authed(|api| async move { api.user(id).await }).await
            }
        };
        match answer {
            Err(Error::Api(e)) if e.status() == Some(404) => {
                Err(Error::UnknownUser(contact.to_string()))
            }
            other => other,
        }
    }

    async fn fetch_key(&self, user_id: Uuid, version: i64) -> Result<UserInfo, Error> {
        let answer = self
            .authed(|api| async move { api.user_key(user_id, version).await })
            .await;
        match answer {
            Err(Error::Api(ApiError::Server { status: 404, .. })) => Err(Error::UnknownUser(
                format!("{user_id} (key version {version})"),
            )),
            other => other,
        }
    }
}

/// My newest public key.
fn my_newest(account: &AccountRecord) -> Result<PublicKey, Error> {
    account
        .newest_key()
        .map(|k| k.public_key)
        .ok_or(Error::SignedOut)
}

/// Myself as a contact, if `contact` names me.
fn own_contact(account: &AccountRecord, contact: &ContactRef) -> Option<Contact> {
    let is_me = match contact {
        ContactRef::Email(email) => *email == account.email,
        ContactRef::Id(id) => *id == account.user_id,
    };
    if !is_me {
        return None;
    }
    let newest = account.newest_key()?;
    Some(Contact {
        user_id: account.user_id,
        email: Some(account.email.clone()),
        key_version: newest.key_version,
        public_key: newest.public_key,
        safety_number: safety_number(
            account.user_id,
            &newest.public_key,
            account.user_id,
            &newest.public_key,
        ),
    })
}

/// A contact with the safety number of my newest key and `key`.
fn contact_from(
    account: &AccountRecord,
    user_id: Uuid,
    email: Option<String>,
    key_version: i64,
    key: PublicKey,
) -> Result<Contact, Error> {
    let me = my_newest(account)?;
    Ok(Contact {
        user_id,
        email,
        key_version,
        public_key: key,
        safety_number: safety_number(account.user_id, &me, user_id, &key),
    })
}

/// The key change of `info`'s user to `key` (or, without a key of my own to compute the safety
/// number with, that error: never a key change without its safety number).
fn key_change(
    account: &AccountRecord,
    info: &UserInfo,
    pinned: Option<(i64, PublicKey)>,
    key: PublicKey,
) -> Error {
    let me = match my_newest(account) {
        Ok(me) => me,
        Err(e) => return e,
    };
    Error::KeyChanged(Box::new(KeyChange {
        user_id: info.user_id,
        email: info.email.clone(),
        pinned,
        offered: (info.key_version, key),
        safety_number: safety_number(account.user_id, &me, info.user_id, &key),
    }))
}
