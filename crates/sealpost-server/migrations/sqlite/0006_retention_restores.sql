-- Retention (--retention-days) deletes the oldest entries first, a batch at a time: this index
-- finds them without reading the table.
CREATE INDEX IF NOT EXISTS messages_created_at ON messages (created_at);
-- Each `sealpost restore` that raised the mailboxes' seqs, so that an operator can tell later.
CREATE TABLE restores (
    restored_at INTEGER NOT NULL,
    seq_margin  INTEGER NOT NULL,
    mailboxes   INTEGER NOT NULL,
    source      TEXT NOT NULL
);
