-- How many entries each mailbox holds, kept by the transactions that add and delete them, so
-- that a send can be held to --mailbox-max-entries without counting rows.
ALTER TABLE users ADD COLUMN entries INTEGER NOT NULL DEFAULT 0;
UPDATE users SET entries = (SELECT COUNT(*) FROM messages WHERE messages.mailbox = users.id);
