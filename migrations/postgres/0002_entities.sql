-- Entity types and the entities customers own (PostgreSQL).

CREATE TABLE entity_types (
    pk               uuid PRIMARY KEY,
    workspace_id     uuid NOT NULL REFERENCES workspaces (id),
    id               text NOT NULL,
    display_name     text NOT NULL,
    attribution_keys jsonb NOT NULL DEFAULT '[]',
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    archived_at      timestamptz,
    UNIQUE (workspace_id, id)
);
CREATE INDEX entity_types_page ON entity_types (workspace_id, created_at, pk);

CREATE TABLE entities (
    pk           uuid PRIMARY KEY,
    workspace_id uuid NOT NULL,
    customer_id  uuid NOT NULL REFERENCES customers (id),
    id           text NOT NULL,
    type_id      text NOT NULL,
    display_name text,
    metadata     jsonb NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL,
    archived_at  timestamptz,
    -- An entity id is unique within its owner: the same id under another
    -- customer is another entity.
    UNIQUE (customer_id, id),
    FOREIGN KEY (workspace_id, type_id) REFERENCES entity_types (workspace_id, id)
);
CREATE INDEX entities_page ON entities (customer_id, created_at, pk);
