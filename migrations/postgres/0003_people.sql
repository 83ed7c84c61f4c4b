-- People (PostgreSQL).

CREATE TABLE people (
    id            uuid PRIMARY KEY,
    workspace_id  uuid NOT NULL REFERENCES workspaces (id),
    external_id   text NOT NULL,
    email         text,
    email_key     text,
    phone         text,
    first_name    text,
    last_name     text,
    avatar_url    text,
    timezone      text,
    locale        text,
    status        text NOT NULL,
    attributes    jsonb NOT NULL DEFAULT '{}',
    -- Lower-cased names and email, computed by the domain, for search.
    search_text   text NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    first_seen_at timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL
);
CREATE UNIQUE INDEX people_external_id_unique ON people (workspace_id, external_id);
CREATE UNIQUE INDEX people_email_key_unique ON people (workspace_id, email_key);
CREATE INDEX people_page ON people (workspace_id, created_at, id);
