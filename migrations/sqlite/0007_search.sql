-- Search documents (SQLite): text folded by the domain (src/domain/search.rs)
-- and matched with LIKE, so both backends find the same records. Rows
-- written before this migration hold version 0, and the store rebuilds
-- their documents when it opens the database.

ALTER TABLE customers ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
ALTER TABLE customers ADD COLUMN search_key TEXT NOT NULL DEFAULT '';
ALTER TABLE customers ADD COLUMN search_version INTEGER NOT NULL DEFAULT 0;

ALTER TABLE customer_keys ADD COLUMN search_value TEXT NOT NULL DEFAULT '';
ALTER TABLE customer_keys ADD COLUMN search_version INTEGER NOT NULL DEFAULT 0;

ALTER TABLE users ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN search_version INTEGER NOT NULL DEFAULT 0;

ALTER TABLE user_keys ADD COLUMN search_value TEXT NOT NULL DEFAULT '';
ALTER TABLE user_keys ADD COLUMN search_version INTEGER NOT NULL DEFAULT 0;

ALTER TABLE people ADD COLUMN search_key TEXT NOT NULL DEFAULT '';
ALTER TABLE people ADD COLUMN search_version INTEGER NOT NULL DEFAULT 0;

ALTER TABLE entities ADD COLUMN search_text TEXT NOT NULL DEFAULT '';
ALTER TABLE entities ADD COLUMN search_key TEXT NOT NULL DEFAULT '';
ALTER TABLE entities ADD COLUMN search_version INTEGER NOT NULL DEFAULT 0;
