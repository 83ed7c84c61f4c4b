-- Users, their keys, companies' keys and traits, memberships (PostgreSQL).
-- A company is a customer: its keys live beside it, except `external_id`,
-- which is the customer's own column.

ALTER TABLE customers ADD COLUMN traits jsonb NOT NULL DEFAULT '{}';
ALTER TABLE customers ADD COLUMN last_seen_at timestamptz;

CREATE TABLE customer_keys (
    customer_id  uuid NOT NULL REFERENCES customers (id),
    workspace_id uuid NOT NULL,
    name         text NOT NULL,
    value        text NOT NULL,
    PRIMARY KEY (customer_id, name)
);
CREATE UNIQUE INDEX customer_keys_unique ON customer_keys (workspace_id, name, value);

CREATE TABLE users (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL REFERENCES workspaces (id),
    name         text,
    traits       jsonb NOT NULL DEFAULT '{}',
    last_seen_at timestamptz,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX users_page ON users (workspace_id, created_at, id);

CREATE TABLE user_keys (
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    workspace_id uuid NOT NULL,
    name         text NOT NULL,
    value        text NOT NULL,
    PRIMARY KEY (user_id, name)
);
CREATE UNIQUE INDEX user_keys_unique ON user_keys (workspace_id, name, value);

CREATE TABLE memberships (
    id           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    user_id      uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    customer_id  uuid NOT NULL REFERENCES customers (id),
    role         text NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    UNIQUE (user_id, customer_id)
);
CREATE INDEX memberships_by_customer ON memberships (customer_id, created_at, id);
CREATE INDEX memberships_by_user ON memberships (user_id, created_at, id);
