//! The key lifecycle (PROTOCOL §5; docs/KEYS.md says what each call does to keys and sessions):
//! changing the password, a new recovery key, recovering a forgotten password with it, rotating
//! the key pair, deleting the account.
//!
//! None of them touches a message. The account key never changes, and it wraps every key version
//! the account ever had, so every entry (which names the key version it is sealed to) still opens.

use std::sync::Arc;

use sealpost_crypto::{AccountKey, KdfParams, KeyPair, RecoveryKey};
use zeroize::Zeroizing;

use sealpost_proto::sync::lock;

use crate::account::{normalize_email, wire_auth_key};
use crate::api::{ChangePasswordRequest, Kdf, RecoveryWrap, RotateRequest, SetRecoveryRequest};
use crate::keystore::{KeyRecord, Stored};
use crate::{Client, Error};

impl Client {
    /// Changes the password. `current` is checked here first (it must unwrap the account key
    /// the keystore holds: a wrong one is [`Error::WrongPassword`] and nothing is sent), and its
    /// auth key is the proof the server checks. The new password gets a fresh salt and the limits
    /// `prelogin` answers (refused outside §2.1's bounds, before deriving anything), and the
    /// *same* account key is wrapped under its wrap key: no key pair changes, no message is
    /// touched. Every other session of the account is signed out (their streams end); this one
    /// lives on, and the keystore holds the new kdf and wrap.
    pub async fn change_password(&self, current: &str, new: &str) -> Result<(), Error> {
        let account = self.account()?;
        self.access_token()?;
        let (current_wrap, current_auth) = self.derive(current, account.kdf).await?;
        let account_key = AccountKey::unwrap(&account.wrapped_account_key, &current_wrap)?;
        let offered = self.prelogin(&account.email).await?;
        let kdf = KdfParams::new(offered.opslimit, offered.memlimit)?;
        let (wrap_key, auth_key) = self.derive(new, kdf).await?;
        let request = ChangePasswordRequest {
            current_auth_key: Some(wire_auth_key(&current_auth)),
            recovery_token: None,
            kdf: Kdf::from(&kdf),
            auth_key: wire_auth_key(&auth_key),
            wrapped_account_key: account_key.wrap(&wrap_key).into(),
        };
        let request = &request;
        proof_checked(
            self.authed(|api| async move { api.change_password(request).await })
                .await,
        )?;
        self.modify(|stored| {
            if let Some(record) = stored.account.as_mut() {
                if record.user_id == account.user_id {
                    record.kdf = kdf;
                    record.wrapped_account_key = request.wrapped_account_key.expose().to_vec();
                }
            }
        })?;
        if let Some(unlocked) = lock(&self.inner.keys).as_mut() {
            unlocked.auth_key = Arc::new(auth_key);
        }
        Ok(())
    }

    /// Makes a new recovery key (§2.3) and hands back its text, to show the user once: it is
    /// kept nowhere. The account key wrapped under it replaces the recovery wrap on the server,
    /// so an older recovery key stops working. Needs the keys unlocked.
    pub async fn new_recovery_key(&self) -> Result<Zeroizing<String>, Error> {
        let (account_key, auth_key) =
            self.unlocked(|u| (Arc::clone(&u.account_key), Arc::clone(&u.auth_key)))?;
        let key = RecoveryKey::generate();
        let request = SetRecoveryRequest {
            current_auth_key: wire_auth_key(&auth_key),
            recovery: RecoveryWrap {
                auth_key: wire_auth_key(&key.auth_key()),
                wrapped_account_key: key.wrap_account_key(&account_key).into(),
            },
        };
        let request = &request;
        proof_checked(
            self.authed(|api| async move { api.set_recovery(request).await })
                .await,
        )?;
        Ok(key.to_text())
    }

    /// Sets a new password for an account whose password is forgotten, with its recovery key,
    /// then signs in with it (like [`Client::login`]).
    ///
    /// The text is read first: a typo is [`Error::RecoveryKeyTypo`], never a wrong key. Then
    /// the key is proven (`POST /v1/auth/recover`: a wrong one is [`Error::WrongRecoveryKey`],
    /// and too many of those [`Error::RateLimited`]), the account key unwrapped from the recovery
    /// wrap, wrapped again under the new password (fresh salt, `prelogin`'s limits, checked), and
    /// set with the single-use recovery token. Every session the account had is signed out; every
    /// key version, and so every message, stays reachable. The recovery key itself stays valid.
    pub async fn recover(
        &self,
        email: &str,
        recovery_key: &str,
        new_password: &str,
        device_name: Option<String>,
    ) -> Result<(), Error> {
        let email = normalize_email(email);
        let key = RecoveryKey::parse(recovery_key)?;
        let proof = wire_auth_key(&key.auth_key());
        let answer = match self.inner.api.recover(&email, &proof).await {
            Ok(answer) => answer,
            Err(e) if e.status() == Some(401) => return Err(Error::WrongRecoveryKey),
            Err(e) => return Err(self.api_error(e)),
        };
        let account_key = key.unwrap_account_key(answer.wrapped_account_key.expose())?;
        let offered = self.prelogin(&email).await?;
        let kdf = KdfParams::new(offered.opslimit, offered.memlimit)?;
        let (wrap_key, auth_key) = self.derive(new_password, kdf).await?;
        let request = ChangePasswordRequest {
            current_auth_key: None,
            recovery_token: Some(answer.recovery_token),
            kdf: Kdf::from(&kdf),
            auth_key: wire_auth_key(&auth_key),
            wrapped_account_key: account_key.wrap(&wrap_key).into(),
        };
        // No bearer token: the recovery token is the proof.
        self.inner
            .api
            .change_password(&request)
            .await
            .map_err(|e| self.api_error(e))?;
        self.sign_in(&email, auth_key, &wrap_key, kdf, device_name)
            .await
    }

    /// Rotates the key pair (§2.4): a new pair, its secret key wrapped under the account key,
    /// published as the newest version + 1, which new messages to this account must use. Every
    /// older version stays, here and on the server, so every message still opens. Contacts see
    /// the new key as a key change (§6). Returns the new version. Needs the keys unlocked; a
    /// rotation on another device meanwhile is [`Error::OwnKeysChanged`].
    pub async fn rotate_keys(&self) -> Result<i64, Error> {
        let (newest, account_key, auth_key) = self.unlocked(|u| {
            (
                u.newest().map(|(v, _)| v),
                Arc::clone(&u.account_key),
                Arc::clone(&u.auth_key),
            )
        })?;
        let version = newest.ok_or(Error::Locked)? + 1;
        let pair = KeyPair::generate();
        let record = KeyRecord {
            key_version: version,
            public_key: *pair.public(),
            wrapped_secret_key: account_key.wrap_secret_key(pair.secret()),
        };
        let request = RotateRequest {
            current_auth_key: wire_auth_key(&auth_key),
            public_key: record.public_key.as_bytes().to_vec(),
            key_version: version,
            wrapped_secret_key: record.wrapped_secret_key.clone(),
        };
        let request = &request;
        match self
            .authed(|api| async move { api.rotate_keys(request).await })
            .await
        {
            // Not the newest + 1: another device rotated first.
            Err(Error::Api(e)) if e.status() == Some(409) => return Err(Error::OwnKeysChanged),
            other => proof_checked(other)?,
        }
        let user_id = self.unlocked(|u| u.user_id)?;
        self.modify(|stored| {
            if let Some(account) = stored.account.as_mut() {
                if account.user_id == user_id {
                    account.keys.retain(|k| k.key_version != version);
                    account.keys.push(record);
                    account.keys.sort_by_key(|k| k.key_version);
                }
            }
        })?;
        if let Some(unlocked) = lock(&self.inner.keys).as_mut() {
            unlocked.pairs.insert(version, Arc::new(pair));
        }
        Ok(version)
    }

    /// Deletes the account. On the server its email, password and recovery wraps, wrapped keys,
    /// sessions and whole mailbox are gone, while its public keys stay (marked deleted) so that
    /// what it sent still verifies in its recipients' mailboxes; its email can register again, as
    /// a new user. Here the keystore is emptied and the keys forgotten. Needs the keys unlocked.
    pub async fn delete_account(&self) -> Result<(), Error> {
        let auth_key = self.unlocked(|u| Arc::clone(&u.auth_key))?;
        let proof = wire_auth_key(&auth_key);
        let proof = &proof;
        proof_checked(
            self.authed(|api| async move { api.delete_account(proof).await })
                .await,
        )?;
        self.modify(|stored| *stored = Stored::default())?;
        self.lock();
        Ok(())
    }
}

/// A refused `current_auth_key` (403, never 401 so that it is not taken for an expired token) is
/// a wrong password.
fn proof_checked<T>(result: Result<T, Error>) -> Result<T, Error> {
    match result {
        Err(Error::Api(e)) if e.status() == Some(403) => Err(Error::WrongPassword),
        other => other,
    }
}
