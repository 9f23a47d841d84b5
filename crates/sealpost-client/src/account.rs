//! The account (PROTOCOL §2, §4): registration, login (prelogin → check the kdf → derive → login →
//! unwrap), unlocking from the keystore, logout and sessions.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use sealpost_crypto::{
    derive, AccountKey, AuthKey, KdfParams, KeyPair, PublicKey, RecoveryKey, WrapKey,
};
use sealpost_proto::sync::lock;
use sealpost_proto::SecretBytes;
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::api::{self, ApiError, LoginRequest, RegisterRequest, Session};
use crate::client::{KdfProgress, Unlocked};
use crate::keystore::{AccountRecord, KeyRecord, SessionRecord, Stored};
use crate::{Client, Error};

/// Options of [`Client::register`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegisterOptions {
    /// Make a recovery key (PROTOCOL §2.3) and hand it back once, to show the user.
    pub recovery_key: bool,
    /// The name of this device in the session list.
    pub device_name: Option<String>,
}

/// What registration hands back.
pub struct Registration {
    pub user_id: Uuid,
    /// The recovery key's text (14 groups of 4), to show the user once: it is not kept anywhere.
    pub recovery_key: Option<Zeroizing<String>>,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("user_id", &self.user_id)
            .field(
                "recovery_key",
                &self.recovery_key.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Emails are trimmed and their ASCII letters lowercased before they are compared (§1).
pub fn normalize_email(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

impl Client {
    /// Registers an account and signs in: asks `prelogin` for the server's limits (refusing
    /// ones outside §2.1's bounds), derives the keys from the password with a fresh salt, makes
    /// the account key and a key pair, optionally a recovery key, registers, then logs in with
    /// the same derived key (no second derivation).
    pub async fn register(
        &self,
        email: &str,
        password: &str,
        options: RegisterOptions,
    ) -> Result<Registration, Error> {
        let email = normalize_email(email);
        self.keystore_free_for(None)?;
        let offered = self.prelogin(&email).await?;
        let kdf = KdfParams::new(offered.opslimit, offered.memlimit)?;
        let (wrap_key, auth_key) = self.derive(password, kdf).await?;

        let account_key = AccountKey::generate();
        let pair = KeyPair::generate();
        let recovery = options.recovery_key.then(RecoveryKey::generate);
        let request = RegisterRequest {
            email: email.clone(),
            kdf: api::Kdf::from(&kdf),
            auth_key: wire_auth_key(&auth_key),
            wrapped_account_key: account_key.wrap(&wrap_key).into(),
            public_key: pair.public().as_bytes().to_vec(),
            wrapped_secret_key: account_key.wrap_secret_key(pair.secret()),
            recovery: recovery.as_ref().map(|key| api::RecoveryWrap {
                auth_key: wire_auth_key(&key.auth_key()),
                wrapped_account_key: key.wrap_account_key(&account_key).into(),
            }),
        };
        let registered = match self.inner.api.register(&request).await {
            Ok(r) => r,
            Err(e) if e.status() == Some(409) => return Err(Error::EmailTaken(email)),
            Err(e) => return Err(self.api_error(e)),
        };
        self.sign_in(&email, auth_key, &wrap_key, kdf, options.device_name)
            .await?;
        Ok(Registration {
            user_id: registered.user_id,
            recovery_key: recovery.map(|key| key.to_text()),
        })
    }

    /// Logs in: `prelogin`, then the kdf checked against §2.1's bounds *before* deriving
    /// anything, then derive, `login`, and unwrap the account key and every key version (each
    /// checked against its published public key). Saves the session and the wrapped keys in the
    /// keystore; the unwrapped keys stay in memory.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        device_name: Option<String>,
    ) -> Result<(), Error> {
        let email = normalize_email(email);
        let kdf = self.prelogin(&email).await?;
        let (wrap_key, auth_key) = self.derive(password, kdf).await?;
        self.sign_in(&email, auth_key, &wrap_key, kdf, device_name)
            .await
    }

    /// Unwraps the keys that the keystore holds wrapped, with the password, without asking the
    /// server anything: for a later run of a program that logged in before. A wrong password is
    /// [`Error::WrongPassword`].
    pub async fn unlock(&self, password: &str) -> Result<(), Error> {
        let account = self.account()?;
        let (wrap_key, auth_key) = self.derive(password, account.kdf).await?;
        let account_key = AccountKey::unwrap(&account.wrapped_account_key, &wrap_key)?;
        let pairs = unwrap_pairs(&account_key, &account.keys)?;
        *lock(&self.inner.keys) = Some(Unlocked {
            user_id: account.user_id,
            pairs,
            account_key: Arc::new(account_key),
            auth_key: Arc::new(auth_key),
        });
        Ok(())
    }

    /// Ends this session on the server and forgets its tokens. The account record, the pinned
    /// contacts and the replay cache stay for the next login to the same account; a login to
    /// another account after this one starts the keystore afresh. The tokens are forgotten even
    /// when the server cannot be reached, and then that is the error.
    pub async fn logout(&self) -> Result<(), Error> {
        let result = match self.access_token() {
            Ok(token) => {
                let mut api = self.inner.api.clone();
                api.set_token(Some(token));
                match api.logout().await {
                    // Already expired or revoked: nothing left to end.
                    Err(e) if e.status() == Some(401) => Ok(()),
                    other => other.map_err(|e| self.api_error(e)),
                }
            }
            Err(_) => Ok(()),
        };
        self.modify(|stored| {
            if let Some(account) = stored.account.as_mut() {
                account.session = None;
                account.logged_out = true;
            }
        })?;
        self.lock();
        result
    }

    /// The account's sessions (`current` marks this one).
    pub async fn sessions(&self) -> Result<Vec<Session>, Error> {
        self.authed(|api| async move { api.sessions().await }).await
    }

    /// Ends one of the account's sessions.
    pub async fn revoke_session(&self, id: Uuid) -> Result<(), Error> {
        self.authed(|api| async move { api.revoke_session(id).await })
            .await
    }

    // --- steps ----------------------------------------------------------------------------------

    /// Refuses to register on a keystore that holds an account the user has not logged out of.
    fn keystore_free_for(&self, answered: Option<(Uuid, &str)>) -> Result<(), Error> {
        match other_account(self.load()?.account.as_ref(), answered) {
            Some(refused) => Err(refused),
            None => Ok(()),
        }
    }

    /// `prelogin`, with the answer checked against §2.1 before anything is derived from it.
    pub(crate) async fn prelogin(&self, email: &str) -> Result<KdfParams, Error> {
        let kdf = self
            .inner
            .api
            .prelogin(email)
            .await
            .map_err(|e| self.api_error(e))?;
        Ok(kdf.to_params()?)
    }

    /// Argon2id on a blocking thread (it is slow on purpose, PROTOCOL §2.1), telling the
    /// observer when it starts and ends.
    pub(crate) async fn derive(
        &self,
        password: &str,
        kdf: KdfParams,
    ) -> Result<(WrapKey, AuthKey), Error> {
        let password = Zeroizing::new(password.to_owned());
        self.kdf_progress(KdfProgress::Started);
        let started = Instant::now();
        let derived = tokio::task::spawn_blocking(move || derive(&password, &kdf)).await;
        self.kdf_progress(KdfProgress::Finished(started.elapsed()));
        match derived {
            Ok(keys) => Ok(keys?),
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(_) => Err(Error::InvalidKdf(
                "the key derivation was cancelled".to_owned(),
            )),
        }
    }

    /// `login` with a derived key, then unwrap and save everything.
    pub(crate) async fn sign_in(
        &self,
        email: &str,
        auth_key: AuthKey,
        wrap_key: &WrapKey,
        kdf: KdfParams,
        device_name: Option<String>,
    ) -> Result<(), Error> {
        let request = LoginRequest {
            email: email.to_owned(),
            auth_key: wire_auth_key(&auth_key),
            device_name,
        };
        let login = match self.inner.api.login(&request).await {
            Ok(login) => login,
            Err(ApiError::Server { status: 401, .. }) => return Err(Error::WrongPassword),
            Err(e) => return Err(self.api_error(e)),
        };
        let account_key = AccountKey::unwrap(login.wrapped_account_key.expose(), wrap_key)?;
        let mut keys = Vec::with_capacity(1 + login.previous_keys.len());
        for info in std::iter::once(&login.keys).chain(&login.previous_keys) {
            keys.push(KeyRecord {
                key_version: info.key_version,
                public_key: PublicKey::from_bytes(&info.public_key)?,
                wrapped_secret_key: info.wrapped_secret_key.clone(),
            });
        }
        keys.sort_by_key(|k| k.key_version);
        let pairs = unwrap_pairs(&account_key, &keys)?;
        let record = AccountRecord {
            server: self.server().to_owned(),
            email: email.to_owned(),
            user_id: login.user_id,
            kdf,
            wrapped_account_key: login.wrapped_account_key.expose().to_vec(),
            keys,
            session: Some(SessionRecord {
                session_id: login.session_id,
                access_token: login.access_token,
                refresh_token: login.refresh_token,
            }),
            logged_out: false,
        };
        let replaced = self.modify(|stored| {
            let answered = Some((record.user_id, record.server.as_str()));
            if let Some(refused) = other_account(stored.account.as_ref(), answered) {
                return Err(refused);
            }
            let same = stored
                .account
                .as_ref()
                .is_some_and(|a| a.user_id == record.user_id && a.server == record.server);
            if !same {
                // Empty, or the user logged out of another account: its pins and replay cache
                // are not this one's.
                *stored = Stored::default();
            }
            stored.version = 1;
            stored.account = Some(record);
            Ok(())
        })?;
        replaced?;
        *lock(&self.inner.keys) = Some(Unlocked {
            user_id: login.user_id,
            pairs,
            account_key: Arc::new(account_key),
            auth_key: Arc::new(auth_key),
        });
        Ok(())
    }
}

/// Why the keystore cannot take the account `answered` (its id and server; `None` before a
/// registration, where any account held is another one): it holds another account that the user
/// has not logged out of. A server's answer never wipes the pins of an account in use.
fn other_account(held: Option<&AccountRecord>, answered: Option<(Uuid, &str)>) -> Option<Error> {
    let held = held?;
    let same = answered.is_some_and(|(id, server)| held.user_id == id && held.server == server);
    (!same && !held.logged_out).then(|| Error::OtherAccount {
        keystore_email: held.email.clone(),
        keystore: held.user_id,
        answered: answered.map(|(id, _)| id),
    })
}

/// An auth key as the wire types carry it: its bytes, encoded once, at the JSON edge.
pub(crate) fn wire_auth_key(key: &AuthKey) -> SecretBytes {
    SecretBytes::from_slice(key.expose_secret())
}

/// Unwraps every key version, each checked against its public key.
fn unwrap_pairs(
    account_key: &AccountKey,
    keys: &[KeyRecord],
) -> Result<BTreeMap<i64, Arc<KeyPair>>, Error> {
    keys.iter()
        .map(|k| {
            let pair = account_key.unwrap_key_pair(&k.wrapped_secret_key, &k.public_key)?;
            Ok((k.key_version, Arc::new(pair)))
        })
        .collect()
}
