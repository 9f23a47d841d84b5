//! Contacts and trust (PROTOCOL §6): lookups, the key pinned on first use for each contact, the
//! key-change check on every later answer, [`Client::trust`], and safety numbers.

use std::fmt;

use sealpost_crypto::{safety_number, PublicKey};
use uuid::Uuid;

use crate::account::normalize_email;
use crate::api::{ApiError, UserInfo};
use crate::keystore::{AccountRecord, ContactRecord};
use crate::pins::{self, Pin, Refusal};
use crate::{Client, ContactChange, Error, KeyChange, KeyForgery};

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

/// The safety numbers of a contact: with the pinned key, and with a key waiting for trust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyNumbers {
    pub user_id: Uuid,
    pub email: Option<String>,
    /// (version, safety number) of the newest pinned key.
    pub pinned: Option<(i64, String)>,
    /// (version, safety number) of a key the server offers that is not trusted yet: a newer key
    /// of this contact, or the key of another account now behind the email (`pending_user_id`).
    pub pending: Option<(i64, String)>,
    /// The account a lookup of the email answers now instead of the pinned one (§6).
    pub pending_user_id: Option<Uuid>,
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
    /// Looks a user up by email or id and checks the server's answer against the pins (§6): at
    /// first contact the email is bound to the account and its whole key list is pinned; later,
    /// a lookup of an email that answers another account is [`Error::ContactChanged`], a newer
    /// key version [`Error::KeyChanged`] (each held until [`Client::trust`]), and a pinned
    /// version with another key, or an older version never listed, [`Error::KeyForged`].
    /// Looking myself up answers my own key from the keystore.
    pub async fn lookup(&self, contact: impl Into<ContactRef>) -> Result<Contact, Error> {
        self.fetch_and_pin(contact.into(), Pin::Check).await
    }

    /// Accepts what the last warning about `contact` showed: the account now behind an email
    /// (after [`Error::ContactChanged`]) or a newer key (after [`Error::KeyChanged`]), if it is
    /// still what the server hands out; otherwise what it hands out now becomes pending and is
    /// that error again, with its own safety number to compare. Accepting fetches the key list
    /// again and pins every version in it; a pinned version that comes back different is
    /// [`Error::KeyForged`], never accepted.
    pub async fn trust(&self, contact: impl Into<ContactRef>) -> Result<Contact, Error> {
        self.fetch_and_pin(contact.into(), Pin::Trust).await
    }

    /// The safety numbers of `contact` (§6), after checking the server's current answer against
    /// the pins (a new key, or a new account behind the email, shows up as `pending`).
    pub async fn safety_numbers(
        &self,
        contact: impl Into<ContactRef>,
    ) -> Result<SafetyNumbers, Error> {
        let account = self.account()?;
        let me = my_newest(&account)?;
        let number = |id: Uuid, key: &PublicKey| safety_number(account.user_id, &me, id, key);
        let (user_id, other_account) = match self.lookup(contact).await {
            Ok(c) => (c.user_id, None),
            Err(Error::KeyChanged(change)) => (change.user_id, None),
            Err(Error::ContactChanged(change)) => {
                let offered = (change.offered_user_id, change.offered);
                match change.pinned_user_id {
                    Some(pinned) => (pinned, Some(offered)),
                    None => (change.offered_user_id, None),
                }
            }
            Err(e) => return Err(e),
        };
        if user_id == account.user_id {
            return Ok(SafetyNumbers {
                user_id,
                email: Some(account.email.clone()),
                pinned: Some((0, number(user_id, &me))),
                pending: None,
                pending_user_id: None,
            });
        }
        let record = self
            .load()?
            .contacts
            .get(&user_id)
            .cloned()
            .ok_or_else(|| Error::UnknownUser(user_id.to_string()))?;
        let pending = match other_account {
            Some((id, (version, key))) => Some((version, number(id, &key))),
            None => record
                .pending
                .map(|p| (p.key_version, number(user_id, &p.public_key))),
        };
        Ok(SafetyNumbers {
            user_id,
            email: record.email.clone(),
            pinned: record.newest().map(|(v, k)| (v, number(user_id, &k))),
            pending,
            pending_user_id: other_account.map(|(id, _)| id),
        })
    }

    /// The contacts this keystore has pinned.
    pub fn contacts(&self) -> Result<Vec<(Uuid, ContactRecord)>, Error> {
        Ok(self.load()?.contacts.into_iter().collect())
    }

    // --- for opening ----------------------------------------------------------------------------

    /// The trusted public key of `user_id` at `version`, for checking a message it sent. At first
    /// contact the whole key list is pinned (and the email the server claims, unless it is pinned
    /// to another account: then the sender stays unverified). A version newer than any pinned is
    /// a key change; an older one that is not pinned is a forgery.
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
        let record = self.complete_record(&account, user_id).await?;
        let email = record.email.clone();
        if let Some(key) = pins::key_at(&record, version)
            .map_err(|refusal| refused(&account, user_id, email.clone(), None, refusal))?
        {
            return Ok(key);
        }
        // Newer than every pinned version: ask, and show it as a key change.
        let info = self.fetch_key(user_id, version).await?;
        let offered = (version, PublicKey::from_bytes(&info.public_key)?);
        let checked = self.modify(|stored| {
            let record = stored
                .contacts
                .entry(user_id)
                .or_insert_with(|| record.clone());
            pins::check_key(record, offered)
        })?;
        checked
            .map(|(_, key)| key)
            .map_err(|refusal| refused(&account, user_id, email, Some(offered), refusal))
    }

    // --- for sending -----------------------------------------------------------------------------

    /// The key to seal to for `contact`, without asking the server: my own, or the newest pinned
    /// key of a contact with nothing waiting for trust. `None` when the server must be asked
    /// (never seen, or a change pending).
    pub(crate) fn pinned_contact(&self, contact: &ContactRef) -> Result<Option<Contact>, Error> {
        let stored = self.load()?;
        let Some(account) = &stored.account else {
            return Err(Error::SignedOut);
        };
        if let Some(me) = own_contact(account, contact) {
            return Ok(Some(me));
        }
        let user_id = match contact {
            ContactRef::Id(id) => *id,
            ContactRef::Email(email) if stored.pending_emails.contains_key(email) => {
                return Ok(None)
            }
            ContactRef::Email(email) => match pins::bound_to(&stored, email) {
                Some(id) => id,
                None => return Ok(None),
            },
        };
        let Some(record) = stored.contacts.get(&user_id) else {
            return Ok(None);
        };
        if record.pending.is_some() || !record.complete {
            return Ok(None);
        }
        record
            .newest()
            .map(|(version, key)| {
                contact_from(account, user_id, record.email.clone(), version, key)
            })
            .transpose()
    }

    /// The email pinned to a contact (no network).
    pub(crate) fn known_email(&self, user_id: Uuid) -> Option<String> {
        let stored = self.load().ok()?;
        if let Some(account) = &stored.account {
            if account.user_id == user_id {
                return Some(account.email.clone());
            }
        }
        stored.contacts.get(&user_id)?.email.clone()
    }

    /// An email the server claims for a contact while it is pinned to another one (no network).
    pub(crate) fn claimed_email(&self, user_id: Uuid) -> Option<String> {
        self.load()
            .ok()?
            .contacts
            .get(&user_id)?
            .claimed_email
            .clone()
    }

    // --- steps ----------------------------------------------------------------------------------

    /// Looks `contact` up (myself: from the keystore) and checks the answer against the pins:
    /// the email's account first (nothing of a new account is pinned before the user accepts
    /// it), then the key list (fetched at first contact, and again to trust), then the key the
    /// server offers as the newest.
    async fn fetch_and_pin(&self, contact: ContactRef, mode: Pin) -> Result<Contact, Error> {
        let account = self.account()?;
        if let Some(me) = own_contact(&account, &contact) {
            return Ok(me);
        }
        let info = self.fetch_user(&contact).await?;
        let id = info.user_id;
        let offered = (info.key_version, PublicKey::from_bytes(&info.public_key)?);
        let asked_email = match &contact {
            ContactRef::Email(email) => Some(email.clone()),
            ContactRef::Id(_) => None,
        };
        if let Some(email) = &asked_email {
            let checked = self.modify(|stored| pins::check_binding(stored, email, id, mode))?;
            checked.map_err(|refusal| refused_binding(&account, email, id, offered, refusal))?;
        }
        let record = self.load()?.contacts.get(&id).cloned();
        let email = record
            .as_ref()
            .and_then(|r| r.email.clone())
            .or_else(|| asked_email.clone());
        let refused = |refusal| refused(&account, id, email.clone(), Some(offered), refusal);
        let list = match &record {
            Some(r) if r.complete && mode == Pin::Check => None,
            Some(r) if r.complete && !pins::may_trust(r, offered) => {
                // Trust without having been shown this key: show it first.
                let checked = self.modify(|stored| {
                    let record = stored.contacts.entry(id).or_insert_with(|| r.clone());
                    pins::check_key(record, offered)
                })?;
                let refusal = match checked {
                    Err(refusal) => refusal,
                    Ok(_) => Refusal::KeyChanged { pinned: r.newest() },
                };
                return Err(refused(refusal));
            }
            _ => Some(self.key_list(id).await?),
        };
        let checked = self.modify(|stored| {
            let record = stored
                .contacts
                .entry(id)
                .or_insert_with(|| ContactRecord::new(None));
            if let Some(list) = &list {
                let newest = record.newest().map_or(0, |(v, _)| v);
                let accept_up_to = match mode {
                    _ if record.keys.is_empty() => i64::MAX,
                    Pin::Trust => offered.0.max(newest),
                    Pin::Check => newest,
                };
                pins::pin_list(record, list, accept_up_to)?;
            }
            let newest = pins::check_key(record, offered)?;
            match (&asked_email, &info.email) {
                (Some(email), _) => pins::bind(stored, email, id),
                (None, Some(claimed)) => pins::claim(stored, id, claimed),
                (None, None) => {}
            }
            let email = stored.contacts.get(&id).and_then(|r| r.email.clone());
            Ok((newest, email))
        })?;
        match checked {
            Ok(((version, key), email)) => contact_from(&account, id, email, version, key),
            Err(refusal) => Err(refused(refusal)),
        }
    }

    /// The record of `user_id` with its whole key list pinned: fetched (with the email the
    /// server claims) at first contact, or once for a record an older SDK made.
    async fn complete_record(
        &self,
        account: &AccountRecord,
        user_id: Uuid,
    ) -> Result<ContactRecord, Error> {
        let record = self.load()?.contacts.get(&user_id).cloned();
        if let Some(record) = record.as_ref().filter(|r| r.complete) {
            return Ok(record.clone());
        }
        let list = self.key_list(user_id).await?;
        let claimed = match record {
            Some(_) => None,
            None => match self.fetch_user(&ContactRef::Id(user_id)).await {
                Ok(info) => info.email,
                // Deleted: its keys are still listed, its email is gone.
                Err(Error::UnknownUser(_)) => None,
                Err(e) => return Err(e),
            },
        };
        let pinned = self.modify(|stored| {
            let record = stored
                .contacts
                .entry(user_id)
                .or_insert_with(|| ContactRecord::new(None));
            let accept_up_to = match record.newest() {
                None => i64::MAX,
                Some((newest, _)) => newest,
            };
            pins::pin_list(record, &list, accept_up_to)?;
            if let Some(email) = &claimed {
                pins::claim(stored, user_id, email);
            }
            Ok(stored.contacts.get(&user_id).cloned())
        })?;
        match pinned {
            Ok(Some(record)) => Ok(record),
            Ok(None) => Err(Error::UnknownUser(user_id.to_string())),
            Err(refusal) => Err(refused(account, user_id, claimed, None, refusal)),
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

    /// Every key version of `user_id`, checked for shape: its own list, ascending, each version
    /// once, every key a valid one.
    async fn key_list(&self, user_id: Uuid) -> Result<Vec<(i64, PublicKey)>, Error> {
        let answer = self
            .authed(|api| async move { api.user_keys(user_id).await })
            .await;
        let list = match answer {
            Err(Error::Api(e)) if e.status() == Some(404) => {
                return Err(Error::UnknownUser(user_id.to_string()))
            }
            other => other?,
        };
        let ascending = list
            .keys
            .windows(2)
            .all(|w| w[0].key_version < w[1].key_version);
        if list.user_id != user_id || !ascending || list.keys.is_empty() {
            return Err(Error::Api(ApiError::Protocol(format!(
                "the key list of {user_id} is not one user's versions in ascending order"
            ))));
        }
        list.keys
            .iter()
            .map(|k| Ok((k.key_version, PublicKey::from_bytes(&k.public_key)?)))
            .collect()
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

/// A key change of `user_id` to `offered` (or, without a key of my own to compute the safety
/// number with, that error: never a key change without its safety number).
fn key_change(
    account: &AccountRecord,
    user_id: Uuid,
    email: Option<String>,
    pinned: Option<(i64, PublicKey)>,
    offered: (i64, PublicKey),
) -> Error {
    let me = match my_newest(account) {
        Ok(me) => me,
        Err(e) => return e,
    };
    Error::KeyChanged(Box::new(KeyChange {
        user_id,
        email,
        pinned,
        offered,
        safety_number: safety_number(account.user_id, &me, user_id, &offered.1),
    }))
}

/// A refusal of the keys of `user_id` as the SDK's error; `offered` is the key a key change
/// shows (only [`pins::check_key`] answers one, where the offered key is known).
fn refused(
    account: &AccountRecord,
    user_id: Uuid,
    email: Option<String>,
    offered: Option<(i64, PublicKey)>,
    refusal: Refusal,
) -> Error {
    match (refusal, offered) {
        (Refusal::KeyChanged { pinned }, Some(offered)) => {
            key_change(account, user_id, email, pinned, offered)
        }
        (
            Refusal::Forged {
                key_version,
                reason,
            },
            _,
        ) => Error::KeyForged(Box::new(KeyForgery {
            user_id,
            email,
            key_version,
            reason,
        })),
        // Neither is answered where these are called; refuse all the same.
        (Refusal::KeyChanged { .. } | Refusal::ContactChanged { .. }, _) => {
            Error::UnknownUser(user_id.to_string())
        }
    }
}

/// A refused binding of `email` to `offered_user_id` as the SDK's error, with the safety number
/// of the offered account's key.
fn refused_binding(
    account: &AccountRecord,
    email: &str,
    offered_user_id: Uuid,
    offered: (i64, PublicKey),
    refusal: Refusal,
) -> Error {
    let Refusal::ContactChanged { pinned } = refusal else {
        return refused(
            account,
            offered_user_id,
            Some(email.to_owned()),
            Some(offered),
            refusal,
        );
    };
    let me = match my_newest(account) {
        Ok(me) => me,
        Err(e) => return e,
    };
    Error::ContactChanged(Box::new(ContactChange {
        email: email.to_owned(),
        pinned_user_id: pinned,
        offered_user_id,
        offered,
        safety_number: safety_number(account.user_id, &me, offered_user_id, &offered.1),
    }))
}
