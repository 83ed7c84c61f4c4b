-- People (SQLite).

CREATE TABLE people (
    id            BLOB PRIMARY KEY NOT NULL,
    workspace_id  BLOB NOT NULL REFERENCES workspaces (id),
    external_id   TEXT NOT NULL,
    email         TEXT,
    email_key     TEXT,
    phone         TEXT,
    first_name    TEXT,
    last_name     TEXT,
    avatar_url    TEXT,
    timezone      TEXT,
    locale        TEXT,
    status        TEXT NOT NULL,
    attributes    TEXT NOT NULL DEFAULT '{}',
    -- Lower-cased names and email, computed by the domain, for search.
    search_text   TEXT NOT NULL DEFAULT '',
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    first_seen_at TEXT NOT NULL,
    last_seen_at  TEXT NOT NULL
);
CREATE UNIQUE INDEX people_external_id_unique ON people (workspace_id, external_id);
CREATE UNIQUE INDEX people_email_key_unique ON people (workspace_id, email_key);
CREATE INDEX people_page ON people (workspace_id, created_at, id);
