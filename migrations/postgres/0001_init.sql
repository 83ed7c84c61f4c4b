-- Workspaces, API keys and customers (PostgreSQL). Same tables and columns
-- as the SQLite schema, in PostgreSQL's native types.

CREATE TABLE workspaces (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL
);

CREATE TABLE api_keys (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id),
    secret_hash  bytea NOT NULL,
    created_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX api_keys_by_workspace ON api_keys (workspace_id, created_at);

CREATE TABLE customers (
    id              uuid PRIMARY KEY,
    workspace_id    uuid NOT NULL REFERENCES workspaces (id),
    external_id     text,
    email           text,
    -- The lower-cased email, computed by the domain so both backends agree
    -- on what "the same email" means.
    email_key       text,
    email_verified  boolean NOT NULL DEFAULT false,
    name            text,
    billing_address jsonb,
    metadata        jsonb NOT NULL DEFAULT '{}',
    kind            text NOT NULL DEFAULT 'individual',
    created_at      timestamptz NOT NULL,
    modified_at     timestamptz,
    deleted_at      timestamptz
);
-- Uniqueness holds among live customers only, so a soft delete frees the
-- email and the external id.
CREATE UNIQUE INDEX customers_email_key_live
    ON customers (workspace_id, email_key) WHERE deleted_at IS NULL;
CREATE UNIQUE INDEX customers_external_id_live
    ON customers (workspace_id, external_id) WHERE deleted_at IS NULL;
CREATE INDEX customers_page_live
    ON customers (workspace_id, created_at, id) WHERE deleted_at IS NULL;
