//! The crate's one error type: each variant says *what* failed, never *why* inside a primitive.

use uuid::Uuid;

/// What went wrong, never why inside a primitive: there is no "bad padding" versus "bad tag"
/// oracle, and no variant carries partial plaintext.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Text that is not canonical base64url without padding (§1).
    #[error("not canonical base64url without padding: {0}")]
    Base64(&'static str),
    /// A public key of the wrong length or of small order (§2).
    #[error("invalid public key: {0}")]
    InvalidPublicKey(&'static str),
    /// Key-derivation parameters refused before deriving anything (§2.1): a server that hands
    /// these out is either broken or trying to weaken the password hash.
    #[error("refusing key-derivation parameters: {0}")]
    InvalidKdf(&'static str),
    /// The wrapped account key does not open under the password's wrap key (§2.2).
    #[error("wrong password")]
    WrongPassword,
    /// The recovery-wrapped account key does not open under this (well-formed) recovery key (§2.3).
    #[error("this recovery key does not belong to this account")]
    WrongRecoveryKey,
    /// A wrapped key that is not 72 bytes, or a wrapped secret key that does not open under the
    /// account key (§2.2): the stored copy is damaged or belongs to another account.
    #[error("a wrapped key is damaged or belongs to another account")]
    CorruptWrappedKey,
    /// An unwrapped secret key whose public key is not the one published for it (§2.2).
    #[error("the unwrapped secret key does not match the published public key")]
    KeyPairMismatch,
    /// Recovery-key text of the wrong length, with a character outside the alphabet, or with a
    /// wrong check (§2.3).
    #[error("that recovery key has a typo")]
    RecoveryKeyTypo,
    /// The envelope is not sealed to my key, or its payload is addressed to someone else (§3.3).
    #[error("this message was not sealed for this account")]
    NotForMe,
    /// The inner box was not made by the claimed sender's key, or the payload names another
    /// sender (§3.3).
    #[error("this message was not sent by the account it claims")]
    Forged,
    /// Authentic, but not a valid version-1 payload: padding, UTF-8, JSON, duplicate keys, `v`,
    /// field types, or a timestamp more than 5 minutes in the future (§3.1, §3.3).
    #[error("malformed message payload")]
    Malformed,
    /// The same payload id already arrived in a different mailbox entry (§3.3 step 5).
    #[error("this message is a replay of an earlier one")]
    Replayed,
    /// An authentic payload of a `type` this version does not know; its metadata is kept so that
    /// a client can show it as unsupported, never as text (§3.1).
    #[error("unsupported message type {:?}", .0.kind)]
    UnsupportedType(Box<UnsupportedPayload>),
}

/// The checked metadata of an authentic payload whose `type` is not `"text"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsupportedPayload {
    /// The sender's payload id (for the replay check).
    pub id: Uuid,
    /// The sender, already checked against the entry.
    pub from: Uuid,
    /// The recipient, already checked against the entry.
    pub to: Uuid,
    /// Unix milliseconds, already checked not to be in the future.
    pub ts: u64,
    /// The unknown `type`, as the sender wrote it.
    pub kind: String,
}
