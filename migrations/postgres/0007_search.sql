-- Search documents (PostgreSQL): text folded by the domain
-- (src/domain/search.rs) and matched with LIKE, so both backends find the
-- same records. Rows written before this migration hold version 0, and the
-- store rebuilds their documents when it opens the database.

ALTER TABLE customers ADD COLUMN search_text text NOT NULL DEFAULT '';
ALTER TABLE customers ADD COLUMN search_key text NOT NULL DEFAULT '';
ALTER TABLE customers ADD COLUMN search_version bigint NOT NULL DEFAULT 0;

ALTER TABLE customer_keys ADD COLUMN search_value text NOT NULL DEFAULT '';
ALTER TABLE customer_keys ADD COLUMN search_version bigint NOT NULL DEFAULT 0;

ALTER TABLE users ADD COLUMN search_text text NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN search_version bigint NOT NULL DEFAULT 0;

ALTER TABLE user_keys ADD COLUMN search_value text NOT NULL DEFAULT '';
ALTER TABLE user_keys ADD COLUMN search_version bigint NOT NULL DEFAULT 0;

ALTER TABLE people ADD COLUMN search_key text NOT NULL DEFAULT '';
ALTER TABLE people ADD COLUMN search_version bigint NOT NULL DEFAULT 0;

ALTER TABLE entities ADD COLUMN search_text text NOT NULL DEFAULT '';
ALTER TABLE entities ADD COLUMN search_key text NOT NULL DEFAULT '';
ALTER TABLE entities ADD COLUMN search_version bigint NOT NULL DEFAULT 0;

-- What makes a search fast here. `pg_trgm` (a trusted extension shipped
-- with PostgreSQL) indexes the trigrams of the folded text, so `LIKE
-- '%text%'` finds a rare match without reading every row; the planner
-- still walks the page index instead when a query matches many rows.
-- Prefixes use a pattern-ordered B-tree. SQLite has neither: it reads the
-- page index in order and stops at a full page (see BENCHMARKS.md).
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE INDEX customers_search_text ON customers USING gin (search_text gin_trgm_ops);
CREATE INDEX customers_search_key ON customers (workspace_id, search_key text_pattern_ops);
CREATE INDEX customer_keys_search_value ON customer_keys USING gin (search_value gin_trgm_ops);
CREATE INDEX users_search_text ON users USING gin (search_text gin_trgm_ops);
CREATE INDEX user_keys_search_value ON user_keys USING gin (search_value gin_trgm_ops);
CREATE INDEX people_search_text ON people USING gin (search_text gin_trgm_ops);
CREATE INDEX people_search_key ON people (workspace_id, search_key text_pattern_ops);
