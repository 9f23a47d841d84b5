//! The pins of PROTOCOL §6 (1.1) as pure rules on the keystore's [`Stored`]: which account an
//! email is bound to, and every key version of each contact. `contacts` asks the server and
//! applies these rules under the keystore's lock; nothing here does I/O, so each rule is tested
//! on its own below.

use sealpost_crypto::PublicKey;
use uuid::Uuid;

use crate::error::ForgeryReason;
use crate::keystore::{ContactRecord, PendingKey, Stored};

/// What a check may accept besides what is pinned already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pin {
    /// Nothing: anything new becomes pending (a change to show the user).
    Check,
    /// Also what is pending, which the user was shown and has accepted.
    Trust,
}

/// Why the server's answer cannot be used as it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The email is pinned to another account (`None`: to none, but the account offered is
    /// pinned under another email); the offered account is now pending for the email.
    ContactChanged { pinned: Option<Uuid> },
    /// A version newer than every pinned one: now the pending key.
    KeyChanged { pinned: Option<(i64, PublicKey)> },
    /// What no honest server answers: refused for good.
    Forged {
        key_version: i64,
        reason: ForgeryReason,
    },
}

/// The account `email` is pinned to.
pub(crate) fn bound_to(stored: &Stored, email: &str) -> Option<Uuid> {
    stored
        .contacts
        .iter()
        .find(|(_, record)| record.email.as_deref() == Some(email))
        .map(|(id, _)| *id)
}

/// Checks a lookup of `email` that answered `offered`: fine when the email is pinned to it, or
/// pinned to nobody (first use, bound by [`bind`] once the keys are pinned); with
/// [`Pin::Trust`], also when `offered` is the pending account of the email. Anything else makes
/// `offered` the pending account and is [`Refusal::ContactChanged`].
pub(crate) fn check_binding(
    stored: &mut Stored,
    email: &str,
    offered: Uuid,
    mode: Pin,
) -> Result<(), Refusal> {
    let pinned = bound_to(stored, email);
    if pinned == Some(offered) {
        stored.pending_emails.remove(email);
        return Ok(());
    }
    let bound_elsewhere = stored
        .contacts
        .get(&offered)
        .and_then(|record| record.email.as_deref())
        .is_some_and(|other| other != email);
    if pinned.is_none() && !bound_elsewhere {
        return Ok(());
    }
    if mode == Pin::Trust && stored.pending_emails.get(email) == Some(&offered) {
        return Ok(());
    }
    stored.pending_emails.insert(email.to_owned(), offered);
    Err(Refusal::ContactChanged { pinned })
}

/// Pins `email` to `id`: the account it was pinned to before (if any) keeps its keys, and its
/// messages show from then on as from an unverified sender claiming the email.
pub(crate) fn bind(stored: &mut Stored, email: &str, id: Uuid) {
    for (other, record) in stored.contacts.iter_mut() {
        if *other != id && record.email.as_deref() == Some(email) {
            record.email = None;
            record.claimed_email = Some(email.to_owned());
        }
    }
    let record = stored
        .contacts
        .entry(id)
        .or_insert_with(|| ContactRecord::new(None));
    record.email = Some(email.to_owned());
    record.claimed_email = None;
    stored.pending_emails.remove(email);
}

/// The server says that `id` (a contact met by id, or a sender) has `email`: pinned when the
/// email is pinned to nobody and the contact has none; otherwise, if the email is another
/// account's, only noted as claimed (never shown as the pinned contact's name).
pub(crate) fn claim(stored: &mut Stored, id: Uuid, email: &str) {
    let bound = bound_to(stored, email);
    if bound == Some(id) {
        return;
    }
    let Some(has_email) = stored.contacts.get(&id).map(|r| r.email.is_some()) else {
        return;
    };
    if bound.is_none() && !has_email {
        bind(stored, email, id);
    } else if let Some(record) = stored.contacts.get_mut(&id) {
        record.claimed_email = Some(email.to_owned());
    }
}

/// Pins a key list the server answered (ascending, each version once). Every pinned version must
/// come back with the same key. A version older than the newest pinned that is not pinned is a
/// forgery on a complete record (an honest server listed it at first contact), and pinned on a
/// record an older SDK made. Versions newer than every pinned one are pinned up to
/// `accept_up_to`, and left for [`check_key`] to show as a key change above it.
pub(crate) fn pin_list(
    record: &mut ContactRecord,
    list: &[(i64, PublicKey)],
    accept_up_to: i64,
) -> Result<(), Refusal> {
    if let Some((version, _)) = record
        .keys
        .iter()
        .find(|(v, k)| !list.contains(&(**v, **k)))
    {
        return Err(forged(*version, ForgeryReason::PinnedKeyChanged));
    }
    let newest = record.newest().map_or(0, |(v, _)| v);
    let mut new = Vec::new();
    for &(version, key) in list {
        if record.keys.contains_key(&version) {
            continue;
        }
        if version < newest && record.complete {
            return Err(forged(version, ForgeryReason::NotInKeyList));
        }
        if version < newest || version <= accept_up_to {
            new.push((version, key));
        }
    }
    record.keys.extend(new);
    record.complete = true;
    if record
        .pending
        .is_some_and(|p| record.keys.get(&p.key_version) == Some(&p.public_key))
    {
        record.pending = None;
    }
    Ok(())
}

/// Checks the key the server hands out as a contact's newest against a complete record: a
/// pinned version with its pinned key is fine (the newest pinned key is the one to use); a
/// pinned version with another key, or an older version that is not pinned, is a forgery; a
/// newer version becomes the pending key and is a key change.
pub(crate) fn check_key(
    record: &mut ContactRecord,
    offered: (i64, PublicKey),
) -> Result<(i64, PublicKey), Refusal> {
    let (version, key) = offered;
    let newest = record.newest();
    match record.keys.get(&version) {
        Some(pinned) if *pinned == key => {
            if newest.map(|(v, _)| v) == Some(version) {
                record.pending = None;
            }
            return Ok(newest.unwrap_or(offered));
        }
        Some(_) => return Err(forged(version, ForgeryReason::PinnedKeyChanged)),
        None => {}
    }
    if newest.is_some_and(|(v, _)| version < v) {
        return Err(forged(version, ForgeryReason::NotInKeyList));
    }
    record.pending = Some(PendingKey {
        key_version: version,
        public_key: key,
    });
    Err(Refusal::KeyChanged { pinned: newest })
}

/// Whether trusting may accept `offered`: it is pinned already, or it is the pending key the
/// user was shown.
pub(crate) fn may_trust(record: &ContactRecord, offered: (i64, PublicKey)) -> bool {
    record.keys.get(&offered.0) == Some(&offered.1)
        || record.pending
            == Some(PendingKey {
                key_version: offered.0,
                public_key: offered.1,
            })
}

/// The pinned key of a complete record at `version`: `Ok(None)` for a version newer than every
/// pinned one (ask the server, and show it as a key change); an older one not pinned is forged.
pub(crate) fn key_at(record: &ContactRecord, version: i64) -> Result<Option<PublicKey>, Refusal> {
    if let Some(key) = record.keys.get(&version) {
        return Ok(Some(*key));
    }
    match record.newest() {
        Some((newest, _)) if version < newest => Err(forged(version, ForgeryReason::NotInKeyList)),
        _ => Ok(None),
    }
}

fn forged(key_version: i64, reason: ForgeryReason) -> Refusal {
    Refusal::Forged {
        key_version,
        reason,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn key() -> PublicKey {
        *sealpost_crypto::KeyPair::generate().public()
    }

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn record(email: Option<&str>, keys: &[(i64, PublicKey)]) -> ContactRecord {
        let mut record = ContactRecord::new(email.map(str::to_owned));
        record.keys.extend(keys.iter().copied());
        record.complete = true;
        record
    }

    #[test]
    fn an_email_stays_bound_to_its_first_account_until_trusted() {
        let mut stored = Stored::default();
        stored
            .contacts
            .insert(id(1), record(Some("a@x"), &[(1, key())]));
        assert_eq!(check_binding(&mut stored, "a@x", id(1), Pin::Check), Ok(()));
        // Unpinned email: fine, nothing pending.
        assert_eq!(check_binding(&mut stored, "b@x", id(2), Pin::Check), Ok(()));
        assert!(stored.pending_emails.is_empty());
        // Another account for a pinned email: a change, even when "trusted" unseen.
        for mode in [Pin::Trust, Pin::Check] {
            assert_eq!(
                check_binding(&mut stored, "a@x", id(3), mode),
                Err(Refusal::ContactChanged {
                    pinned: Some(id(1))
                })
            );
        }
        assert_eq!(stored.pending_emails["a@x"], id(3));
        // Trust accepts only the account that was shown.
        assert!(check_binding(&mut stored, "a@x", id(4), Pin::Trust).is_err());
        assert_eq!(stored.pending_emails["a@x"], id(4));
        assert_eq!(check_binding(&mut stored, "a@x", id(4), Pin::Trust), Ok(()));
        bind(&mut stored, "a@x", id(4));
        assert_eq!(bound_to(&stored, "a@x"), Some(id(4)));
        assert!(stored.pending_emails.is_empty());
        let old = &stored.contacts[&id(1)];
        assert_eq!(
            (old.email.as_deref(), old.claimed_email.as_deref()),
            (None, Some("a@x"))
        );
    }

    #[test]
    fn an_account_pinned_under_one_email_is_not_silently_another() {
        let mut stored = Stored::default();
        stored
            .contacts
            .insert(id(1), record(Some("a@x"), &[(1, key())]));
        assert_eq!(
            check_binding(&mut stored, "b@x", id(1), Pin::Check),
            Err(Refusal::ContactChanged { pinned: None })
        );
    }

    #[test]
    fn a_claimed_email_pinned_elsewhere_is_only_a_claim() {
        let mut stored = Stored::default();
        stored
            .contacts
            .insert(id(1), record(Some("a@x"), &[(1, key())]));
        stored.contacts.insert(id(2), record(None, &[(1, key())]));
        claim(&mut stored, id(2), "a@x");
        assert_eq!(bound_to(&stored, "a@x"), Some(id(1)));
        assert_eq!(
            stored.contacts[&id(2)].claimed_email.as_deref(),
            Some("a@x")
        );
        stored.contacts.insert(id(3), record(None, &[(1, key())]));
        claim(&mut stored, id(3), "c@x");
        assert_eq!(bound_to(&stored, "c@x"), Some(id(3)));
    }

    #[test]
    fn a_first_list_is_pinned_whole_and_later_ones_must_agree() {
        let (k1, k2, k3) = (key(), key(), key());
        let mut fresh = ContactRecord::new(None);
        pin_list(&mut fresh, &[(1, k1), (2, k2)], i64::MAX).unwrap();
        assert!(fresh.complete);
        assert_eq!(fresh.keys.len(), 2);
        // A pinned version that comes back different, or not at all: forged.
        for list in [vec![(1, k3), (2, k2)], vec![(2, k2)]] {
            let mut copy = fresh.clone();
            assert!(matches!(
                pin_list(&mut copy, &list, i64::MAX),
                Err(Refusal::Forged {
                    key_version: 1,
                    reason: ForgeryReason::PinnedKeyChanged
                })
            ));
            assert_eq!(copy, fresh);
        }
        // A newer version is left out up to what may be accepted.
        let mut copy = fresh.clone();
        pin_list(&mut copy, &[(1, k1), (2, k2), (3, k3)], 2).unwrap();
        assert_eq!(copy.keys.len(), 2);
        pin_list(&mut copy, &[(1, k1), (2, k2), (3, k3)], 3).unwrap();
        assert_eq!(copy.keys[&3], k3);
    }

    #[test]
    fn an_old_version_appearing_later_is_forged_unless_an_older_sdk_pinned_one_at_a_time() {
        let (k1, k2, k3) = (key(), key(), key());
        let mut complete = record(None, &[(1, k1), (3, k3)]);
        assert!(matches!(
            pin_list(&mut complete, &[(1, k1), (2, k2), (3, k3)], 3),
            Err(Refusal::Forged {
                key_version: 2,
                reason: ForgeryReason::NotInKeyList
            })
        ));
        let mut legacy = record(None, &[(3, k3)]);
        legacy.complete = false;
        pin_list(&mut legacy, &[(1, k1), (2, k2), (3, k3)], 3).unwrap();
        assert_eq!(legacy.keys.len(), 3);
        assert!(legacy.complete);
    }

    #[test]
    fn keys_offered_as_the_newest() {
        let (k1, k2, evil) = (key(), key(), key());
        let mut r = record(None, &[(1, k1), (2, k2)]);
        assert_eq!(check_key(&mut r, (2, k2)), Ok((2, k2)));
        // An older pinned version offered as the newest: the newest pinned is used.
        assert_eq!(check_key(&mut r, (1, k1)), Ok((2, k2)));
        assert!(matches!(
            check_key(&mut r, (2, evil)),
            Err(Refusal::Forged {
                reason: ForgeryReason::PinnedKeyChanged,
                ..
            })
        ));
        let mut gap = record(None, &[(1, k1), (3, k2)]);
        assert!(matches!(
            check_key(&mut gap, (2, evil)),
            Err(Refusal::Forged {
                reason: ForgeryReason::NotInKeyList,
                ..
            })
        ));
        assert!(r.pending.is_none());
        assert_eq!(
            check_key(&mut r, (3, evil)),
            Err(Refusal::KeyChanged {
                pinned: Some((2, k2))
            })
        );
        assert!(may_trust(&r, (3, evil)));
        assert!(!may_trust(&r, (3, k1)));
        assert_eq!(key_at(&r, 1), Ok(Some(k1)));
        assert_eq!(key_at(&r, 4), Ok(None));
        assert!(key_at(&gap, 2).is_err());
    }
}
