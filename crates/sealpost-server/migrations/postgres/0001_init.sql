-- Sealpost schema v1 (PostgreSQL). Times are Unix milliseconds.
CREATE TABLE server_secrets (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);

CREATE TABLE users (
    id                  UUID PRIMARY KEY,
    email               TEXT UNIQUE,          -- NULL once the account is deleted
    kdf_salt            BYTEA,
    kdf_opslimit        BIGINT,
    kdf_memlimit        BIGINT,
    auth_hash           BYTEA,                -- SHA-256(auth_key)
    wrapped_account_key BYTEA,
    recovery_auth_hash  BYTEA,                -- SHA-256(recovery_auth_key)
    recovery_wrapped    BYTEA,
    key_version         BIGINT NOT NULL,      -- the newest key version
    last_seq            BIGINT NOT NULL DEFAULT 0,  -- the mailbox counter: the last seq assigned
    created_at          BIGINT NOT NULL,
    deleted_at          BIGINT
);

CREATE TABLE user_keys (
    user_id            UUID NOT NULL REFERENCES users (id),
    key_version        BIGINT NOT NULL,
    public_key         BYTEA NOT NULL,
    wrapped_secret_key BYTEA,                 -- NULL once the account is deleted
    created_at         BIGINT NOT NULL,
    PRIMARY KEY (user_id, key_version)
);

CREATE TABLE sessions (
    id           UUID PRIMARY KEY,
    user_id      UUID NOT NULL REFERENCES users (id),
    device_name  TEXT,
    created_at   BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,             -- when the current refresh token dies unused
    revoked_at   BIGINT
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE refresh_tokens (
    hash       BYTEA PRIMARY KEY,             -- SHA-256 of the opaque token
    session_id UUID NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    used_at    BIGINT                         -- set when rotated: presenting it again revokes the session
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE messages (
    mailbox            UUID NOT NULL REFERENCES users (id),
    seq                BIGINT NOT NULL,
    id                 UUID NOT NULL UNIQUE,
    sender             UUID NOT NULL,
    recipient          UUID NOT NULL,
    ciphertext         BYTEA NOT NULL,
    key_version        BIGINT NOT NULL,
    sender_key_version BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    PRIMARY KEY (mailbox, seq)
);
