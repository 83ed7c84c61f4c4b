-- The change log (SQLite): one row per record a write changed, numbered per
-- workspace by `seq` in commit order (SQLite's single writer orders them).

CREATE TABLE change_counters (
    workspace_id BLOB PRIMARY KEY REFERENCES workspaces (id),
    last_seq     INTEGER NOT NULL DEFAULT 0,
    -- Changes up to this number were pruned: a cursor before it has expired.
    pruned_seq   INTEGER NOT NULL DEFAULT 0
);
INSERT INTO change_counters (workspace_id) SELECT id FROM workspaces;

CREATE TABLE changes (
    workspace_id BLOB NOT NULL,
    seq          INTEGER NOT NULL,
    kind         TEXT NOT NULL,
    operation    TEXT NOT NULL,
    record_id    TEXT NOT NULL,
    external_id  TEXT,
    owner_id     TEXT,
    api_key_id   BLOB NOT NULL,
    committed_at TEXT NOT NULL,
    -- The record as the contract's message (what its Get returns), encoded.
    record       BLOB NOT NULL,
    PRIMARY KEY (workspace_id, seq)
);
CREATE INDEX changes_by_record ON changes (workspace_id, record_id, seq);
CREATE INDEX changes_by_owner ON changes (workspace_id, owner_id, seq) WHERE owner_id IS NOT NULL;
CREATE INDEX changes_by_age ON changes (committed_at);
