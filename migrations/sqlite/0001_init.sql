-- Workspaces, API keys and customers (SQLite).
-- Ids are 16-byte UUID blobs, times RFC 3339 text at millisecond precision
-- (which sorts chronologically), JSON documents text.

CREATE TABLE workspaces (
    id          BLOB PRIMARY KEY NOT NULL,
    name        TEXT NOT NULL UNIQUE,
    created_at  TEXT NOT NULL
);

CREATE TABLE api_keys (
    id           BLOB PRIMARY KEY NOT NULL,
    workspace_id BLOB NOT NULL REFERENCES workspaces (id),
    secret_hash  BLOB NOT NULL,
    created_at   TEXT NOT NULL,
    revoked_at   TEXT
);
CREATE INDEX api_keys_by_workspace ON api_keys (workspace_id, created_at);

CREATE TABLE customers (
    id              BLOB PRIMARY KEY NOT NULL,
    workspace_id    BLOB NOT NULL REFERENCES workspaces (id),
    external_id     TEXT,
    email           TEXT,
    -- The lower-cased email, computed by the domain so both backends agree
    -- on what "the same email" means.
    email_key       TEXT,
    email_verified  BOOLEAN NOT NULL DEFAULT FALSE,
    name            TEXT,
    billing_address TEXT,
    metadata        TEXT NOT NULL DEFAULT '{}',
    kind            TEXT NOT NULL DEFAULT 'individual',
    created_at      TEXT NOT NULL,
    modified_at     TEXT,
    deleted_at      TEXT
);
-- Uniqueness holds among live customers only, so a soft delete frees the
-- email and the external id.
CREATE UNIQUE INDEX customers_email_key_live
    ON customers (workspace_id, email_key) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX customers_external_id_live
    ON customers (workspace_id, external_id) WHERE deleted_at IS NULL;
CREATE INDEX customers_page_live
    ON customers (workspace_id, created_at, id) WHERE deleted_at IS NULL;
