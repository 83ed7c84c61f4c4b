-- Webhook endpoints (PostgreSQL): each follows its workspace's change log
-- with its own durable cursor, delivered by one replica at a time.

CREATE TABLE webhook_endpoints (
    id                   uuid PRIMARY KEY,
    workspace_id         uuid NOT NULL REFERENCES workspaces (id),
    url                  text NOT NULL,
    description          text NOT NULL DEFAULT '',
    -- The change kinds sent, comma-separated; every kind when empty.
    kinds                text NOT NULL DEFAULT '',
    -- The signing secret: the server signs with it, so it cannot be kept
    -- as a hash. Never logged, shown once.
    secret               text NOT NULL,
    enabled              boolean NOT NULL,
    disabled_reason      text,
    disabled_at          timestamptz,
    -- The last change acknowledged (or skipped by `kinds`).
    cursor_seq           bigint NOT NULL,
    -- Failed attempts in a row at the change after the cursor, since when,
    -- and when the next is due.
    consecutive_failures integer NOT NULL DEFAULT 0,
    failing_since        timestamptz,
    next_attempt_at      timestamptz,
    -- Bumped by every change a caller makes (settings, cursor, secret): the
    -- deliverer's writes name the generation they read, so a stale one
    -- never overwrites a caller's change.
    generation           bigint NOT NULL DEFAULT 0,
    -- The generation of the last replay.
    replay_generation    bigint NOT NULL DEFAULT 0,
    -- The replica delivering for the endpoint, until when.
    lease_owner          uuid,
    lease_expires_at     timestamptz,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);
CREATE INDEX webhook_endpoints_page ON webhook_endpoints (workspace_id, created_at, id);
CREATE INDEX webhook_endpoints_due ON webhook_endpoints (next_attempt_at) WHERE enabled;

CREATE TABLE webhook_deliveries (
    id            uuid PRIMARY KEY,
    endpoint_id   uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    seq           bigint NOT NULL,
    attempt       integer NOT NULL,
    http_status   integer NOT NULL,
    error         text NOT NULL,
    latency_ms    bigint NOT NULL,
    delivered     boolean NOT NULL,
    next_retry_at timestamptz,
    created_at    timestamptz NOT NULL
);
CREATE INDEX webhook_deliveries_page ON webhook_deliveries (endpoint_id, created_at, id);
