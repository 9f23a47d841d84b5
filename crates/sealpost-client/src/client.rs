//! [`Client`]: the session (tokens, refreshed once on a 401), the unlocked keys in memory, and the
//! keystore. The operations live beside it by domain: `account`, `contacts`, `messages`,
//! `stream`, `lifecycle`.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sealpost_crypto::{AccountKey, AuthKey, KeyPair, PublicKey};
use sealpost_proto::sync::lock;
use sealpost_proto::Secret;
use uuid::Uuid;

use crate::api::{Api, ApiError};
use crate::keystore::{AccountRecord, Keystore, Stored};
use crate::{Error, Transport};

/// What the password's key derivation is doing, for a progress indicator: Argon2id is slow on
/// purpose (PROTOCOL §2.1), long enough for a person to notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KdfProgress {
    /// Deriving has begun.
    Started,
    /// Deriving is over (successfully or not), after this long.
    Finished(Duration),
}

/// A callback told about [`KdfProgress`].
pub type KdfObserver = Arc<dyn Fn(KdfProgress) + Send + Sync>;

/// The Sealpost client: an account's session, keys, contacts and mailbox.
///
/// Cheap to clone (clones share everything, the stream included). The secret keys live only in
/// memory, after [`Client::login`], [`Client::register`] or [`Client::unlock`]; the keystore
/// holds them wrapped. With them in memory are the account key and the password's auth key, the
/// proof that the lifecycle calls ([`Client::rotate_keys`], …) send; [`Client::lock`] forgets
/// all of them.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    /// The server, without a token (each call gets a clone that carries the current one).
    pub(crate) api: Api,
    pub(crate) keystore: Box<dyn Keystore>,
    /// Serialises this client's read-modify-writes of the keystore (a stream and a send may run
    /// at once); [`Keystore::lock`] holds other processes on the same keystore off.
    pub(crate) keystore_writes: Mutex<()>,
    /// The unlocked key pairs, by version.
    pub(crate) keys: Mutex<Option<Unlocked>>,
    /// Only one refresh at a time: a refresh token is single-use, and presenting a used one
    /// revokes the whole session.
    pub(crate) refreshing: tokio::sync::Mutex<()>,
    /// Each new access token this client's refreshes got, for its open streams to
    /// re-authenticate with (PROTOCOL §4.2).
    pub(crate) tokens: tokio::sync::watch::Sender<Option<Secret>>,
    pub(crate) kdf_observer: Mutex<Option<KdfObserver>>,
}

/// The account's keys, unwrapped: what a password (or recovery key) opened, kept in memory only.
pub(crate) struct Unlocked {
    pub(crate) user_id: Uuid,
    /// Every key version's pair, by version (old ones open old messages).
    pub(crate) pairs: BTreeMap<i64, Arc<KeyPair>>,
    /// The account key, which wraps a new key pair at rotation and is re-wrapped by a new
    /// recovery key (PROTOCOL §2.2, §5).
    pub(crate) account_key: Arc<AccountKey>,
    /// The password's auth key: the `current_auth_key` proof of the lifecycle calls (§5), so
    /// that they need not ask for the password again. Never stored.
    pub(crate) auth_key: Arc<AuthKey>,
}

impl Unlocked {
    pub(crate) fn newest(&self) -> Option<(i64, Arc<KeyPair>)> {
        self.pairs
            .iter()
            .next_back()
            .map(|(v, k)| (*v, Arc::clone(k)))
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unlocked = lock(&self.inner.keys).is_some();
        f.debug_struct("Client")
            .field("server", &self.inner.api.base_url())
            .field("keystore", &self.inner.keystore)
            .field("unlocked", &unlocked)
            .finish_non_exhaustive()
    }
}

/// Who this client is signed in as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub server: String,
    pub email: String,
    pub user_id: Uuid,
    /// The newest key version and its public key.
    pub key_version: i64,
    pub public_key: PublicKey,
    /// Whether the keystore holds a session (it may still have been revoked on the server).
    pub signed_in: bool,
    /// Whether the secret keys are in memory.
    pub unlocked: bool,
}

impl Client {
    /// A client for the server at `server` (e.g. `https://sealpost.example.com`) keeping its
    /// state in `keystore`, with the default [`Transport`]. Nothing is read or sent yet.
    pub fn new(server: &str, keystore: impl Keystore + 'static) -> Client {
        Client::with_api(Api::new(server), Box::new(keystore))
    }

    /// Like [`Client::new`], reaching the server as `transport` says (trusted CAs, plain HTTP,
    /// timeouts), for the API and the stream alike; refuses at once a URL that breaks the
    /// transport rule (PROTOCOL §7).
    pub fn with_transport(
        server: &str,
        keystore: impl Keystore + 'static,
        transport: &Transport,
    ) -> Result<Client, Error> {
        let api = Api::with_transport(server, transport)?;
        Ok(Client::with_api(api, Box::new(keystore)))
    }

    /// A client for the server that `keystore` names (the one it last signed in to), or
    /// `default_server` when it names none.
    pub fn from_keystore(
        keystore: impl Keystore + 'static,
        default_server: &str,
    ) -> Result<Client, Error> {
        let server = keystore
            .load()?
            .account
            .map(|a| a.server)
            .unwrap_or_else(|| default_server.to_owned());
        Ok(Client::new(&server, keystore))
    }

    /// A client over an [`Api`] (for its HTTP client's settings) and a boxed keystore.
    pub fn with_api(api: Api, keystore: Box<dyn Keystore>) -> Client {
        let mut api = api;
        api.set_token(None);
        Client {
            inner: Arc::new(Inner {
                api,
                keystore,
                keystore_writes: Mutex::new(()),
                keys: Mutex::new(None),
                refreshing: tokio::sync::Mutex::new(()),
                tokens: tokio::sync::watch::Sender::new(None),
                kdf_observer: Mutex::new(None),
            }),
        }
    }

    /// Calls `observer` when the password's key derivation starts and ends.
    pub fn set_kdf_observer(&self, observer: impl Fn(KdfProgress) + Send + Sync + 'static) {
        *lock(&self.inner.kdf_observer) = Some(Arc::new(observer));
    }

    /// The server's base URL.
    pub fn server(&self) -> &str {
        self.inner.api.base_url()
    }

    /// The raw HTTP layer, without a token.
    pub fn api(&self) -> &Api {
        &self.inner.api
    }

    /// Who the keystore says this client is; `None` before the first login.
    pub fn whoami(&self) -> Result<Option<Identity>, Error> {
        let stored = self.load()?;
        let unlocked = self.is_unlocked();
        Ok(stored.account.and_then(|account| {
            let newest = account.newest_key()?.clone();
            Some(Identity {
                server: account.server,
                email: account.email,
                user_id: account.user_id,
                key_version: newest.key_version,
                public_key: newest.public_key,
                signed_in: account.session.is_some(),
                unlocked,
            })
        }))
    }

    /// Whether the secret keys are in memory.
    pub fn is_unlocked(&self) -> bool {
        lock(&self.inner.keys).is_some()
    }

    /// Forgets the secret keys, the account key and the auth key held in memory (the keystore
    /// keeps the keys wrapped).
    pub fn lock(&self) {
        *lock(&self.inner.keys) = None;
    }

    // --- plumbing -------------------------------------------------------------------------------

    pub(crate) fn load(&self) -> Result<Stored, Error> {
        Ok(self.inner.keystore.load()?)
    }

    /// Read-modify-write of the keystore, under its lock: no other writer (another task, or
    /// another process on the same keystore) can slip a save in between and lose it.
    pub(crate) fn modify<T>(&self, change: impl FnOnce(&mut Stored) -> T) -> Result<T, Error> {
        let _one_at_a_time = lock(&self.inner.keystore_writes);
        let _writers = self.inner.keystore.lock()?;
        let mut stored = self.inner.keystore.load()?;
        let out = change(&mut stored);
        self.inner.keystore.save(&stored)?;
        Ok(out)
    }

    /// The account record, or [`Error::SignedOut`] before any login.
    pub(crate) fn account(&self) -> Result<AccountRecord, Error> {
        self.load()?.account.ok_or(Error::SignedOut)
    }

    /// The unlocked keys, or [`Error::Locked`].
    pub(crate) fn unlocked<T>(&self, f: impl FnOnce(&Unlocked) -> T) -> Result<T, Error> {
        lock(&self.inner.keys).as_ref().map(f).ok_or(Error::Locked)
    }

    pub(crate) fn api_error(&self, error: ApiError) -> Error {
        Error::from_api(self.server(), error)
    }

    /// The current access token, or [`Error::SignedOut`].
    pub(crate) fn access_token(&self) -> Result<Secret, Error> {
        self.account()?
            .session
            .map(|s| s.access_token)
            .ok_or(Error::SignedOut)
    }

    /// Runs an authenticated call; on a 401 (an expired access token), refreshes once and runs it
    /// again. A refresh that fails signs the keystore out ([`Error::SignedOut`]).
    pub(crate) async fn authed<T, F, Fut>(&self, call: F) -> Result<T, Error>
    where
        F: Fn(Api) -> Fut,
        Fut: Future<Output = Result<T, ApiError>>,
    {
        let token = self.access_token()?;
        let mut api = self.inner.api.clone();
        api.set_token(Some(token.clone()));
        match call(api).await {
            Err(e) if e.status() == Some(401) => {
                self.refresh(&token).await?;
                let mut api = self.inner.api.clone();
                api.set_token(Some(self.access_token()?));
                match call(api).await {
                    Err(e) if e.status() == Some(401) => {
                        self.sign_out_locally()?;
                        Err(Error::SignedOut)
                    }
                    other => other.map_err(|e| self.api_error(e)),
                }
            }
            other => other.map_err(|e| self.api_error(e)),
        }
    }

    /// Exchanges the refresh token for a new pair, unless someone else (another task, or another
    /// process on the same keystore) already replaced `failed_token`.
    pub(crate) async fn refresh(&self, failed_token: &Secret) -> Result<(), Error> {
        let _one_at_a_time = self.inner.refreshing.lock().await;
        // Other processes on this keystore wait until the new pair is saved: presenting the same
        // refresh token twice would count as reuse and end the session.
        let _writers = self.inner.keystore.lock()?;
        let session = self.account()?.session.ok_or(Error::SignedOut)?;
        if session.access_token != *failed_token {
            return Ok(());
        }
        match self.inner.api.refresh(&session.refresh_token).await {
            Ok(pair) => {
                self.modify(|stored| {
                    if let Some(s) = stored.account.as_mut().and_then(|a| a.session.as_mut()) {
                        s.access_token = pair.access_token.clone();
                        s.refresh_token = pair.refresh_token.clone();
                    }
                })?;
                self.inner.tokens.send_replace(Some(pair.access_token));
                Ok(())
            }
            Err(ApiError::Transport(source)) => Err(Error::Unreachable {
                url: self.server().to_owned(),
                source,
            }),
            Err(e) if e.status() == Some(429) => Err(self.api_error(e)),
            Err(_) => {
                self.sign_out_locally()?;
                Err(Error::SignedOut)
            }
        }
    }

    /// Forgets the session's tokens in the keystore (the account and pins stay).
    pub(crate) fn sign_out_locally(&self) -> Result<(), Error> {
        self.modify(|stored| {
            if let Some(account) = stored.account.as_mut() {
                account.session = None;
            }
        })
    }

    /// Tells the observer, if any.
    pub(crate) fn kdf_progress(&self, progress: KdfProgress) {
        let observer = lock(&self.inner.kdf_observer).clone();
        if let Some(observer) = observer {
            observer(progress);
        }
    }
}
