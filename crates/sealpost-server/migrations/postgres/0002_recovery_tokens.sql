-- Single-use, short-lived proofs of the recovery key (PROTOCOL §5), stored only as hashes.
CREATE TABLE recovery_tokens (
    hash       BYTEA PRIMARY KEY,             -- SHA-256 of the opaque token
    user_id    UUID NOT NULL REFERENCES users (id),
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX recovery_tokens_user ON recovery_tokens (user_id);
