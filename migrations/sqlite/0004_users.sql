-- Users, their keys, companies' keys and traits, memberships (SQLite).
-- A company is a customer: its keys live beside it, except `external_id`,
-- which is the customer's own column.

ALTER TABLE customers ADD COLUMN traits TEXT NOT NULL DEFAULT '{}';
ALTER TABLE customers ADD COLUMN last_seen_at TEXT;

CREATE TABLE customer_keys (
    customer_id  BLOB NOT NULL REFERENCES customers (id),
    workspace_id BLOB NOT NULL,
    name         TEXT NOT NULL,
    value        TEXT NOT NULL,
    PRIMARY KEY (customer_id, name)
);
CREATE UNIQUE INDEX customer_keys_unique ON customer_keys (workspace_id, name, value);

CREATE TABLE users (
    id           BLOB PRIMARY KEY NOT NULL,
    workspace_id BLOB NOT NULL REFERENCES workspaces (id),
    name         TEXT,
    traits       TEXT NOT NULL DEFAULT '{}',
    last_seen_at TEXT,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL
);
CREATE INDEX users_page ON users (workspace_id, created_at, id);

CREATE TABLE user_keys (
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    workspace_id BLOB NOT NULL,
    name         TEXT NOT NULL,
    value        TEXT NOT NULL,
    PRIMARY KEY (user_id, name)
);
CREATE UNIQUE INDEX user_keys_unique ON user_keys (workspace_id, name, value);

CREATE TABLE memberships (
    id           BLOB PRIMARY KEY NOT NULL,
    workspace_id BLOB NOT NULL,
    user_id      BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    customer_id  BLOB NOT NULL REFERENCES customers (id),
    role         TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    UNIQUE (user_id, customer_id)
);
CREATE INDEX memberships_by_customer ON memberships (customer_id, created_at, id);
CREATE INDEX memberships_by_user ON memberships (user_id, created_at, id);
