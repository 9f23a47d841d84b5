//! The local keystore: what a client keeps between runs (PROTOCOL §2.2, §3.3 step 5, §6).
//!
//! It holds the server URL, the account (email, user id, kdf, the *wrapped* account key and
//! secret keys, the public keys), the session tokens, the pinned keys of contacts and the replay
//! cache. It never holds the password, the account key or a secret key unwrapped: a later run
//! re-derives them from the password ([`crate::Client::unlock`]).
//!
//! Two implementations of [`Keystore`]: [`FileKeystore`] (JSON in a directory, the file mode
//! 0600 and the directory 0700) and [`MemoryKeystore`] (for tests and short-lived clients).

use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use fs4::fs_std::FileExt;

use sealpost_crypto::{KdfParams, PublicKey};
use sealpost_proto::sync::lock;
use sealpost_proto::Secret;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::api::b64;

/// Where a client keeps its [`Stored`] state. Every change is a whole read-modify-write that
/// [`crate::Client`] makes under [`Keystore::lock`], so that two processes sharing one keystore
/// (an `inbox --follow` and a `send`) never lose each other's updates.
pub trait Keystore: Send + Sync + fmt::Debug {
    /// The state as last saved; the default (empty) state when nothing was saved yet.
    fn load(&self) -> Result<Stored, KeystoreError>;
    /// Replaces the state.
    fn save(&self, stored: &Stored) -> Result<(), KeystoreError>;
    /// Holds every other writer of this keystore off (other processes too, for a
    /// [`FileKeystore`]) until the guard is dropped. Holds taken through one instance (or its
    /// clones) nest without waiting for each other: the caller orders its own writes. The default
    /// holds nothing, for a keystore that only one process can see.
    fn lock(&self) -> Result<KeystoreLock, KeystoreError> {
        Ok(KeystoreLock::default())
    }
}

/// A shared keystore: so that a caller can keep a handle on what a [`crate::Client`] stores.
impl<K: Keystore + ?Sized> Keystore for std::sync::Arc<K> {
    fn load(&self) -> Result<Stored, KeystoreError> {
        (**self).load()
    }

    fn save(&self, stored: &Stored) -> Result<(), KeystoreError> {
        (**self).save(stored)
    }

    fn lock(&self) -> Result<KeystoreLock, KeystoreError> {
        (**self).lock()
    }
}

/// What [`Keystore::lock`] hands back: the other writers wait until it is dropped.
#[derive(Default)]
pub struct KeystoreLock {
    _held: Option<Box<dyn Send + Sync>>,
}

impl fmt::Debug for KeystoreLock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeystoreLock")
            .field("held", &self._held.is_some())
            .finish()
    }
}

/// What the keystore could not do.
#[derive(Debug, thiserror::Error)]
pub enum KeystoreError {
    #[error("cannot {action} {}: {source}", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is damaged: {message}", .path.display())]
    Corrupt { path: PathBuf, message: String },
}

/// Everything a client keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stored {
    /// The format of this record.
    #[serde(default = "format_version")]
    pub version: u32,
    /// The account signed in (or last signed in) on this keystore.
    #[serde(default)]
    pub account: Option<AccountRecord>,
    /// Pinned contacts by user id (trust on first use, §6).
    #[serde(default)]
    pub contacts: BTreeMap<Uuid, ContactRecord>,
    /// The replay cache (§3.3 step 5): payload id → the mailbox entry it first arrived in.
    #[serde(default)]
    pub seen: BTreeMap<Uuid, Uuid>,
    /// The `seq` each entry of the replay cache arrived at: an opened entry served again under
    /// another `seq` is a replay too.
    #[serde(default)]
    pub seen_seq: BTreeMap<Uuid, i64>,
    /// Emails whose lookup answered another account than the one pinned for them (§6): email →
    /// the user id offered, held until the user trusts it.
    #[serde(default)]
    pub pending_emails: BTreeMap<String, Uuid>,
}

fn format_version() -> u32 {
    1
}

/// The account: enough to unwrap the keys again from the password, and the session.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// The server's base URL.
    pub server: String,
    pub email: String,
    pub user_id: Uuid,
    /// The password hash's parameters (already checked against the bounds of §2.1).
    pub kdf: KdfParams,
    /// The account key under the password's wrap key (§2.2).
    #[serde(with = "b64")]
    pub wrapped_account_key: Vec<u8>,
    /// Every key version, newest last.
    pub keys: Vec<KeyRecord>,
    /// `None` when signed out.
    #[serde(default)]
    pub session: Option<SessionRecord>,
    /// Signed out by the user ([`crate::Client::logout`]), rather than by an expired session: only
    /// then may a login here be another account's (which starts the keystore afresh).
    #[serde(default)]
    pub logged_out: bool,
}

/// One key version of the account: its public key and its secret key wrapped under the account
/// key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub key_version: i64,
    pub public_key: PublicKey,
    #[serde(with = "b64")]
    pub wrapped_secret_key: Vec<u8>,
}

/// The session's tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub session_id: Uuid,
    pub access_token: Secret,
    pub refresh_token: Secret,
}

/// A contact's pins (§6): the email bound to the account, and every key version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContactRecord {
    /// The email pinned to this account (at most one contact holds a given email); `None` when
    /// none is, e.g. because the email is pinned to another account.
    pub email: Option<String>,
    /// The pinned public key of each version, by version.
    pub keys: BTreeMap<i64, PublicKey>,
    /// A newer key the server handed out, waiting for the user's trust.
    #[serde(default)]
    pub pending: Option<PendingKey>,
    /// An email the server claims for this account while this keystore pins it to another one:
    /// what it sends shows as from an unverified sender.
    #[serde(default)]
    pub claimed_email: Option<String>,
    /// `keys` holds the whole key list as first fetched (§6 of 1.1). `false` for a contact an
    /// older SDK pinned one version at a time: its list is fetched once, every pinned version
    /// having to come back unchanged.
    #[serde(default)]
    pub complete: bool,
}

/// A key waiting for the user's trust.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingKey {
    pub key_version: i64,
    pub public_key: PublicKey,
}

impl AccountRecord {
    /// The newest key version.
    pub fn newest_key(&self) -> Option<&KeyRecord> {
        self.keys.iter().max_by_key(|k| k.key_version)
    }
}

impl ContactRecord {
    /// A contact with nothing pinned yet.
    pub fn new(email: Option<String>) -> Self {
        ContactRecord {
            email,
            keys: BTreeMap::new(),
            pending: None,
            claimed_email: None,
            complete: false,
        }
    }

    /// The newest pinned version and key.
    pub fn newest(&self) -> Option<(i64, PublicKey)> {
        self.keys.iter().next_back().map(|(v, k)| (*v, *k))
    }
}

/// Not derived: the wrapped account key shows only its length.
impl fmt::Debug for AccountRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountRecord")
            .field("server", &self.server)
            .field("email", &self.email)
            .field("user_id", &self.user_id)
            .field("kdf", &self.kdf)
            // Wrapped under the password: a reader of logs could test guesses offline.
            .field(
                "wrapped_account_key",
                &format_args!("<{} bytes>", self.wrapped_account_key.len()),
            )
            .field("keys", &self.keys)
            .field("session", &self.session)
            .field("logged_out", &self.logged_out)
            .finish()
    }
}

// ---------------------------------------------------------------------------------------------
// In memory
// ---------------------------------------------------------------------------------------------

/// A keystore that lives as long as the value: for tests and short-lived clients.
#[derive(Debug, Default)]
pub struct MemoryKeystore {
    stored: Mutex<Stored>,
}

impl MemoryKeystore {
    pub fn new() -> Self {
        Self::default()
    }
}

impl Keystore for MemoryKeystore {
    fn load(&self) -> Result<Stored, KeystoreError> {
        Ok(lock(&self.stored).clone())
    }

    fn save(&self, stored: &Stored) -> Result<(), KeystoreError> {
        *lock(&self.stored) = stored.clone();
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// In a directory
// ---------------------------------------------------------------------------------------------

/// A keystore in a directory (created mode 0700): one JSON file, `state.json`, mode 0600,
/// replaced atomically on every save (the directory is synced after the rename), and an empty
/// `lock` file that writers hold an advisory lock on ([`Keystore::lock`]).
#[derive(Debug, Clone)]
pub struct FileKeystore {
    dir: PathBuf,
    /// The lock file, opened once, and how many holds of this instance (and its clones) are
    /// live: the file is locked while there is at least one.
    writers: Arc<Mutex<Writers>>,
}

#[derive(Debug, Default)]
struct Writers {
    file: Option<File>,
    holds: usize,
}

/// One hold on a [`FileKeystore`]'s lock; the last one dropped unlocks the file.
struct FileHold(Arc<Mutex<Writers>>);

impl Drop for FileHold {
    fn drop(&mut self) {
        let mut writers = lock(&self.0);
        writers.holds = writers.holds.saturating_sub(1);
        if writers.holds == 0 {
            if let Some(file) = &writers.file {
                // Closing the file would unlock it too; an error here leaves it to that.
                let _ = FileExt::unlock(file);
            }
        }
    }
}

impl FileKeystore {
    /// The state file's name inside the directory.
    pub const FILE: &'static str = "state.json";
    /// The lock file's name inside the directory.
    pub const LOCK_FILE: &'static str = "lock";

    /// A keystore in `dir`, created (with its parents) if missing; its mode is set to 0700.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, KeystoreError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
        restrict(&dir, 0o700).map_err(io("restrict the permissions of", &dir))?;
        Ok(Self {
            dir,
            writers: Arc::default(),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The state file.
    pub fn path(&self) -> PathBuf {
        self.dir.join(Self::FILE)
    }
}

impl Keystore for FileKeystore {
    fn load(&self) -> Result<Stored, KeystoreError> {
        let path = self.path();
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Stored::default()),
            Err(e) => return Err(io("read", &path)(e)),
        };
        serde_json::from_str(&text).map_err(|e| KeystoreError::Corrupt {
            path,
            message: e.to_string(),
        })
    }

    fn save(&self, stored: &Stored) -> Result<(), KeystoreError> {
        use std::io::Write as _;
        let path = self.path();
        // Unique per process and per save, so that concurrent saves never share a temporary file.
        static SAVES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = SAVES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let tmp = self
            .dir
            .join(format!(".{}.{}.{n}.tmp", Self::FILE, std::process::id()));
        let text = serde_json::to_vec_pretty(stored).map_err(|e| KeystoreError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        })?;
        let mut file = private_file(&tmp, true)?;
        file.write_all(&text).map_err(io("write", &tmp))?;
        file.sync_all().map_err(io("write", &tmp))?;
        drop(file);
        std::fs::rename(&tmp, &path).map_err(io("replace", &path))?;
        sync_dir(&self.dir).map_err(io("sync", &self.dir))
    }

    fn lock(&self) -> Result<KeystoreLock, KeystoreError> {
        let mut writers = lock(&self.writers);
        if writers.holds == 0 {
            let path = self.dir.join(Self::LOCK_FILE);
            if writers.file.is_none() {
                writers.file = Some(private_file(&path, false)?);
            }
            if let Some(file) = &writers.file {
                // Blocks while another process (or another instance) holds it.
                FileExt::lock_exclusive(file).map_err(io("lock", &path))?;
            }
        }
        writers.holds += 1;
        Ok(KeystoreLock {
            _held: Some(Box::new(FileHold(Arc::clone(&self.writers)))),
        })
    }
}

/// Opens (creating it) a file only its owner may read and write; `truncate` empties it.
fn private_file(path: &Path, truncate: bool) -> Result<File, KeystoreError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(truncate);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path).map_err(io("create", path))?;
    // A file left behind by an older run may have kept a looser mode.
    restrict(path, 0o600).map_err(io("restrict the permissions of", path))?;
    Ok(file)
}

/// Makes a rename inside `dir` durable: the directory's entry is synced, not only the file.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> KeystoreError {
    let path = path.to_owned();
    move |source| KeystoreError::Io {
        action,
        path,
        source,
    }
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn sample() -> Stored {
        let key = *sealpost_crypto::KeyPair::generate().public();
        let mut stored = Stored {
            version: 1,
            ..Stored::default()
        };
        stored.account = Some(AccountRecord {
            server: "http://127.0.0.1:8080".into(),
            email: "alice@example.com".into(),
            user_id: Uuid::from_u128(1),
            kdf: KdfParams::interactive(),
            wrapped_account_key: vec![1; 72],
            keys: vec![KeyRecord {
                key_version: 1,
                public_key: key,
                wrapped_secret_key: vec![2; 72],
            }],
            session: Some(SessionRecord {
                session_id: Uuid::from_u128(2),
                access_token: "access-secret".into(),
                refresh_token: "refresh-secret".into(),
            }),
            logged_out: false,
        });
        stored.contacts.insert(
            Uuid::from_u128(3),
            ContactRecord {
                email: Some("bob@example.com".into()),
                keys: BTreeMap::from([(1, key), (2, key)]),
                pending: Some(PendingKey {
                    key_version: 3,
                    public_key: key,
                }),
                claimed_email: None,
                complete: true,
            },
        );
        stored.seen.insert(Uuid::from_u128(4), Uuid::from_u128(5));
        stored.seen_seq.insert(Uuid::from_u128(5), 7);
        stored
            .pending_emails
            .insert("carol@example.com".into(), Uuid::from_u128(6));
        stored
    }

    #[test]
    fn file_keystore_round_trips_with_private_modes() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("nested").join("home");
        let store = FileKeystore::open(&dir).unwrap();
        assert_eq!(store.load().unwrap(), Stored::default());
        let stored = sample();
        store.save(&stored).unwrap();
        assert_eq!(store.load().unwrap(), stored);
        store.save(&stored).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(mode(&store.path()), 0o600);
        }
        // Only the state file is left: no temporary file behind.
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(FileKeystore::FILE)]);
    }

    #[test]
    fn two_writers_at_once_lose_no_update() {
        // Two instances on one directory, as two processes would have: nothing in memory is
        // shared between them, so only the lock on the file keeps their writes apart.
        const EACH: u128 = 150;
        let root = tempfile::tempdir().unwrap();
        let writers: Vec<_> = (0..2u128)
            .map(|w| {
                let store = FileKeystore::open(root.path()).unwrap();
                std::thread::spawn(move || {
                    for i in 0..EACH {
                        let _held = store.lock().unwrap();
                        let mut stored = store.load().unwrap();
                        let id = Uuid::from_u128(w * 1000 + i);
                        stored.seen.insert(id, id);
                        store.save(&stored).unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.join().unwrap();
        }
        let stored = FileKeystore::open(root.path()).unwrap().load().unwrap();
        assert_eq!(stored.seen.len(), 2 * EACH as usize);
    }

    #[test]
    fn holds_of_one_instance_nest_and_the_last_one_unlocks() {
        let root = tempfile::tempdir().unwrap();
        let store = FileKeystore::open(root.path()).unwrap();
        let outer = store.lock().unwrap();
        // A clone shares the instance's holds: no wait for itself.
        let inner = store.clone().lock().unwrap();
        drop(inner);
        let other = FileKeystore::open(root.path()).unwrap();
        let lock_file = root.path().join(FileKeystore::LOCK_FILE);
        let probe = std::fs::OpenOptions::new()
            .write(true)
            .open(&lock_file)
            .unwrap();
        // Still held by the outer hold.
        assert!(!FileExt::try_lock_exclusive(&probe).unwrap_or(false));
        drop(outer);
        assert!(FileExt::try_lock_exclusive(&probe).unwrap());
        FileExt::unlock(&probe).unwrap();
        drop(other.lock().unwrap());
    }

    #[test]
    fn a_damaged_file_is_an_error_not_an_empty_keystore() {
        let root = tempfile::tempdir().unwrap();
        let store = FileKeystore::open(root.path()).unwrap();
        std::fs::write(store.path(), "{not json").unwrap();
        assert!(matches!(store.load(), Err(KeystoreError::Corrupt { .. })));
    }

    #[test]
    fn debug_shows_no_token() {
        let text = format!("{:?}", sample());
        assert!(!text.contains("access-secret"), "{text}");
        assert!(!text.contains("refresh-secret"), "{text}");
        assert!(text.contains("<72 bytes>"), "{text}");
    }
}
