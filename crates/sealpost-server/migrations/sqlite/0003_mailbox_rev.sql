-- Raised in the same transaction as every deletion from the mailbox; with last_seq it is the
-- mailbox's version, which the newest-page cache checks before serving a page it holds.
ALTER TABLE users ADD COLUMN mailbox_rev BIGINT NOT NULL DEFAULT 0;
