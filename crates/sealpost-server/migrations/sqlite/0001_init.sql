-- Sealpost schema v1 (SQLite). Times are Unix milliseconds.
CREATE TABLE server_secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);

CREATE TABLE users (
    id                  BLOB PRIMARY KEY,
    email               TEXT UNIQUE,          -- NULL once the account is deleted
    kdf_salt            BLOB,
    kdf_opslimit        INTEGER,
    kdf_memlimit        INTEGER,
    auth_hash           BLOB,                -- SHA-256(auth_key)
    wrapped_account_key BLOB,
    recovery_auth_hash  BLOB,                -- SHA-256(recovery_auth_key)
    recovery_wrapped    BLOB,
    key_version         INTEGER NOT NULL,      -- the newest key version
    last_seq            INTEGER NOT NULL DEFAULT 0,  -- the mailbox counter: the last seq assigned
    created_at          INTEGER NOT NULL,
    deleted_at          INTEGER
);

CREATE TABLE user_keys (
    user_id            BLOB NOT NULL REFERENCES users (id),
    key_version        INTEGER NOT NULL,
    public_key         BLOB NOT NULL,
    wrapped_secret_key BLOB,                 -- NULL once the account is deleted
    created_at         INTEGER NOT NULL,
    PRIMARY KEY (user_id, key_version)
);

CREATE TABLE sessions (
    id           BLOB PRIMARY KEY,
    user_id      BLOB NOT NULL REFERENCES users (id),
    device_name  TEXT,
    created_at   INTEGER NOT NULL,
    last_used_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,             -- when the current refresh token dies unused
    revoked_at   INTEGER
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE refresh_tokens (
    hash       BLOB PRIMARY KEY,             -- SHA-256 of the opaque token
    session_id BLOB NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    used_at    INTEGER                         -- set when rotated: presenting it again revokes the session
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

CREATE TABLE messages (
    mailbox            BLOB NOT NULL REFERENCES users (id),
    seq                INTEGER NOT NULL,
    id                 BLOB NOT NULL UNIQUE,
    sender             BLOB NOT NULL,
    recipient          BLOB NOT NULL,
    ciphertext         BLOB NOT NULL,
    key_version        INTEGER NOT NULL,
    sender_key_version INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    PRIMARY KEY (mailbox, seq)
);
