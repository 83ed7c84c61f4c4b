-- Webhook endpoints (SQLite): each follows its workspace's change log with
-- its own durable cursor, delivered by one process at a time.

CREATE TABLE webhook_endpoints (
    id                   BLOB PRIMARY KEY NOT NULL,
    workspace_id         BLOB NOT NULL REFERENCES workspaces (id),
    url                  TEXT NOT NULL,
    description          TEXT NOT NULL DEFAULT '',
    -- The change kinds sent, comma-separated; every kind when empty.
    kinds                TEXT NOT NULL DEFAULT '',
    -- The signing secret: the server signs with it, so it cannot be kept
    -- as a hash. Never logged, shown once.
    secret               TEXT NOT NULL,
    enabled              BOOLEAN NOT NULL,
    disabled_reason      TEXT,
    disabled_at          TEXT,
    -- The last change acknowledged (or skipped by `kinds`).
    cursor_seq           INTEGER NOT NULL,
    -- Failed attempts in a row at the change after the cursor, since when,
    -- and when the next is due.
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    failing_since        TEXT,
    next_attempt_at      TEXT,
    -- Bumped by every change a caller makes (settings, cursor, secret): the
    -- deliverer's writes name the generation they read, so a stale one
    -- never overwrites a caller's change.
    generation           INTEGER NOT NULL DEFAULT 0,
    -- The generation of the last replay.
    replay_generation    INTEGER NOT NULL DEFAULT 0,
    -- The process delivering for the endpoint, until when.
    lease_owner          BLOB,
    lease_expires_at     TEXT,
    created_at           TEXT NOT NULL,
    updated_at           TEXT NOT NULL
);
CREATE INDEX webhook_endpoints_page ON webhook_endpoints (workspace_id, created_at, id);
CREATE INDEX webhook_endpoints_due ON webhook_endpoints (next_attempt_at) WHERE enabled;

CREATE TABLE webhook_deliveries (
    id            BLOB PRIMARY KEY NOT NULL,
    endpoint_id   BLOB NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    attempt       INTEGER NOT NULL,
    http_status   INTEGER NOT NULL,
    error         TEXT NOT NULL,
    latency_ms    INTEGER NOT NULL,
    delivered     BOOLEAN NOT NULL,
    next_retry_at TEXT,
    created_at    TEXT NOT NULL
);
CREATE INDEX webhook_deliveries_page ON webhook_deliveries (endpoint_id, created_at, id);
