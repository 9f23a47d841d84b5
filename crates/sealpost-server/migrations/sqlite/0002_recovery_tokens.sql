-- Single-use, short-lived proofs of the recovery key (PROTOCOL §5), stored only as hashes.
CREATE TABLE recovery_tokens (
    hash       BLOB PRIMARY KEY,             -- SHA-256 of the opaque token
    user_id    BLOB NOT NULL REFERENCES users (id),
    expires_at INTEGER NOT NULL,
    used_at    INTEGER
);
CREATE INDEX recovery_tokens_user ON recovery_tokens (user_id);
