-- Entity types and the entities customers own (SQLite).

CREATE TABLE entity_types (
    pk               BLOB PRIMARY KEY NOT NULL,
    workspace_id     BLOB NOT NULL REFERENCES workspaces (id),
    id               TEXT NOT NULL,
    display_name     TEXT NOT NULL,
    attribution_keys TEXT NOT NULL DEFAULT '[]',
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL,
    archived_at      TEXT,
    UNIQUE (workspace_id, id)
);
CREATE INDEX entity_types_page ON entity_types (workspace_id, created_at, pk);

CREATE TABLE entities (
    pk           BLOB PRIMARY KEY NOT NULL,
    workspace_id BLOB NOT NULL,
    customer_id  BLOB NOT NULL REFERENCES customers (id),
    id           TEXT NOT NULL,
    type_id      TEXT NOT NULL,
    display_name TEXT,
    metadata     TEXT NOT NULL DEFAULT '{}',
    created_at   TEXT NOT NULL,
    updated_at   TEXT NOT NULL,
    archived_at  TEXT,
    -- An entity id is unique within its owner: the same id under another
    -- customer is another entity.
    UNIQUE (customer_id, id),
    FOREIGN KEY (workspace_id, type_id) REFERENCES entity_types (workspace_id, id)
);
CREATE INDEX entities_page ON entities (customer_id, created_at, pk);
