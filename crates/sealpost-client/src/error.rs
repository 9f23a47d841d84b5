//! The SDK's one error type: each variant says what went wrong in words a user can act on, and
//! the checks of PROTOCOL §3.3 and §6 each have a variant of their own.

use sealpost_crypto::PublicKey;
use uuid::Uuid;

use crate::api::ApiError;
use crate::keystore::KeystoreError;
use crate::transport::TransportError;

/// Everything the SDK can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request got no answer: the server is down, the URL is wrong, the network is out.
    #[error("cannot reach the server at {url}: {}", root_cause(.source))]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// Nothing was sent: the server's URL breaks the transport rule (PROTOCOL §7: plain HTTP to
    /// a host that is not loopback, without the opt-in), or the TLS settings cannot be used.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The server refused the call with an error this SDK does not turn into one of its own
    /// variants (or answered something that is not the protocol).
    #[error(transparent)]
    Api(ApiError),
    /// 429: too many attempts (logins, registrations) for now.
    #[error("too many attempts; try again {}", match .retry_after { Some(s) => format!("in {s} s"), None => "later".to_owned() })]
    RateLimited { retry_after: Option<u64> },
    /// There is no session (never signed in, signed out, or the session was revoked and a
    /// refresh failed): sign in again.
    #[error("signed out: run login again")]
    SignedOut,
    /// The secret keys are not in memory: [`crate::Client::unlock`] (or log in) first.
    #[error("the secret keys are locked: unlock them with the password first")]
    Locked,
    /// The password does not unwrap the account key (or the server refused the login).
    #[error("wrong password")]
    WrongPassword,
    /// The server handed out key-derivation parameters this client refuses, before deriving
    /// anything from the password (PROTOCOL §2.1).
    #[error("refusing the server's key-derivation parameters: {0}")]
    InvalidKdf(String),
    /// Registration: the email is taken.
    #[error("an account with the email {0} already exists")]
    EmailTaken(String),
    /// No account with this email or id (or it was deleted).
    #[error("unknown user: {0}")]
    UnknownUser(String),
    /// The server hands out another key for a contact than the one pinned (PROTOCOL §6): until
    /// the user compares the safety number and calls [`crate::Client::trust`], nothing is sealed
    /// to it and nothing signed by it is shown.
    #[error("{0}")]
    KeyChanged(Box<KeyChange>),
    /// A lookup of an email answered another account than the one pinned for it (PROTOCOL §6):
    /// the address was registered again after a deletion, or the server lies. Until the user
    /// compares the safety number and calls [`crate::Client::trust`] with the email, nothing is
    /// sealed to the new account and nothing from it is shown under the email.
    #[error("{0}")]
    ContactChanged(Box<ContactChange>),
    /// The server handed out a key that no honest server hands out (PROTOCOL §6): a pinned key
    /// version with another key, or an older version its key list did not name. Not a key change
    /// to accept: nothing is sealed to it and nothing signed by it is shown.
    #[error("{0}")]
    KeyForged(Box<KeyForgery>),
    /// This keystore holds another account than the one signing in (`answered`: the account the
    /// server's login answered; `None` for a registration, refused before anything is sent). The
    /// keystore, its pins and replay cache, is left as it is: never wiped because a server said
    /// so. To use another account here, log out first ([`crate::Client::logout`]), which is
    /// explicit.
    #[error("this keystore holds the account of {keystore_email} ({keystore}){}: log out first to use another account here", .answered.map(|id| format!(", but the server signed you in as account {id}")).unwrap_or_default())]
    OtherAccount {
        keystore_email: String,
        keystore: Uuid,
        answered: Option<Uuid>,
    },
    /// The server says this account has a newer key version than the one this client holds: the
    /// keys were rotated on another device. Sign in again to fetch them.
    #[error("this account's keys were rotated on another device: log in again")]
    OwnKeysChanged,
    /// An entry is sealed to a key version of mine that this client does not hold.
    #[error(
        "this message is sealed to key version {0}, which this client does not hold: log in again"
    )]
    MissingKeyVersion(i64),
    /// Recovery-key text that does not read back (PROTOCOL §2.3: a wrong length, a character
    /// outside the alphabet, or a wrong check): a typo, never a wrong key.
    #[error("that recovery key has a typo: check it and type it again")]
    RecoveryKeyTypo,
    /// The server refused the recovery key for this email (401: a wrong key and an unknown
    /// email look alike), or the recovery wrap it answered does not open under the key.
    #[error("wrong email or recovery key")]
    WrongRecoveryKey,
    /// The text does not fit in one message.
    #[error("the message is too long: at most {max} bytes once encoded")]
    TooLong { max: usize },
    /// §3.3: not sealed for this account, or addressed to someone else.
    #[error("this message was not sealed for this account")]
    NotForMe,
    /// §3.3: not made by the account the server says sent it.
    #[error("forged: this message was not sent by the account it claims")]
    Forged,
    /// §3.3: authentic but not a valid version-1 payload (or dated in the future).
    #[error("malformed message")]
    Malformed,
    /// §3.3 step 5: the same payload already arrived in another mailbox entry.
    #[error("replayed: this message already arrived as another entry")]
    Replayed,
    /// An authentic message of a type this version cannot show.
    #[error("unsupported message type {0:?}")]
    UnsupportedType(String),
    /// Any other refusal of the crypto crate (a damaged wrapped key, an invalid public key).
    #[error("{0}")]
    Crypto(sealpost_crypto::Error),
    /// The local keystore could not be read or written.
    #[error(transparent)]
    Keystore(#[from] KeystoreError),
    /// The stream cannot go on (a protocol violation, an unsupported URL).
    #[error("stream: {0}")]
    Stream(String),
}

/// A key change (PROTOCOL §6): what was pinned, what the server hands out now, and the safety
/// number to compare with the contact out of band before trusting the new key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyChange {
    pub user_id: Uuid,
    /// `None` for an account that was deleted.
    pub email: Option<String>,
    /// The newest pinned version and key.
    pub pinned: Option<(i64, PublicKey)>,
    /// What the server hands out now.
    pub offered: (i64, PublicKey),
    /// The safety number of my key and the offered one.
    pub safety_number: String,
}

/// A contact change (PROTOCOL §6): the account pinned for an email, the one a lookup answers
/// now, and the safety number of the offered account's key to compare before trusting it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactChange {
    pub email: String,
    /// The account pinned for the email (`None`: none is, but the offered account is pinned
    /// under another email).
    pub pinned_user_id: Option<Uuid>,
    /// The account the server answers now.
    pub offered_user_id: Uuid,
    /// Its newest key version and key.
    pub offered: (i64, PublicKey),
    /// The safety number of my key and the offered one.
    pub safety_number: String,
}

impl std::fmt::Display for ContactChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pinned = self
            .pinned_user_id
            .map_or_else(|| "no account".to_owned(), |id| format!("account {id}"));
        write!(
            f,
            "the account behind {} has changed: you trust {pinned}, the server now answers account {} \
             (the address was registered again, or the server is lying). Nothing was sent. Compare \
             the safety number {} with them, then trust {}",
            self.email,
            self.offered_user_id,
            crate::format_safety_number(&self.safety_number),
            self.email
        )
    }
}

/// A forged key (PROTOCOL §6): whose, which version, and why it cannot be honest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyForgery {
    pub user_id: Uuid,
    /// The email pinned to the account, if any.
    pub email: Option<String>,
    pub key_version: i64,
    pub reason: ForgeryReason,
}

/// Why a key offered by the server cannot be an honest one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForgeryReason {
    /// A pinned version came back with another key (or not at all): versions never change.
    PinnedKeyChanged,
    /// A version older than the newest pinned that the key list did not name at first contact.
    NotInKeyList,
}

impl std::fmt::Display for KeyForgery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who = self
            .email
            .clone()
            .unwrap_or_else(|| self.user_id.to_string());
        let why = match self.reason {
            ForgeryReason::PinnedKeyChanged => "a key version you pinned came back different",
            ForgeryReason::NotInKeyList => "an old key version their key list never named",
        };
        write!(
            f,
            "forged key refused: the server offers key version {} of {who}, {why}; nothing was sealed to it or shown from it",
            self.key_version
        )
    }
}

impl std::fmt::Display for KeyChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let who = self
            .email
            .clone()
            .unwrap_or_else(|| self.user_id.to_string());
        write!(
            f,
            "the key of {who} has changed: compare the safety number {} with them, then trust the new key",
            crate::format_safety_number(&self.safety_number)
        )
    }
}

impl Error {
    /// The key change, if this is one.
    pub fn key_change(&self) -> Option<&KeyChange> {
        match self {
            Error::KeyChanged(change) => Some(change),
            _ => None,
        }
    }

    /// The contact change, if this is one.
    pub fn contact_change(&self) -> Option<&ContactChange> {
        match self {
            Error::ContactChanged(change) => Some(change),
            _ => None,
        }
    }

    /// Turns a call's [`ApiError`] into the SDK's error, naming the server for a transport
    /// failure.
    pub(crate) fn from_api(url: &str, error: ApiError) -> Error {
        match error {
            ApiError::Transport(source) => Error::Unreachable {
                url: url.to_owned(),
                source,
            },
            ApiError::Refused(refused) => Error::Transport(refused),
            ApiError::Server {
                status: 429,
                retry_after,
                ..
            } => Error::RateLimited { retry_after },
            other => Error::Api(other),
        }
    }
}

/// The innermost cause of an error ("Connection refused (os error 111)"), for a one-line message.
fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = error;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

impl From<sealpost_crypto::Error> for Error {
    fn from(error: sealpost_crypto::Error) -> Self {
        use sealpost_crypto::Error as C;
        match error {
            C::WrongPassword => Error::WrongPassword,
            C::InvalidKdf(why) => Error::InvalidKdf(why.to_owned()),
            C::RecoveryKeyTypo => Error::RecoveryKeyTypo,
            C::WrongRecoveryKey => Error::WrongRecoveryKey,
            C::NotForMe => Error::NotForMe,
            C::Forged => Error::Forged,
            C::Malformed => Error::Malformed,
            C::Replayed => Error::Replayed,
            C::UnsupportedType(payload) => Error::UnsupportedType(payload.kind),
            other => Error::Crypto(other),
        }
    }
}
