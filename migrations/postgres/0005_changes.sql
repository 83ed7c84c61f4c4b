-- The change log (PostgreSQL): one row per record a write changed, numbered
-- per workspace by `seq` in commit order.

-- Each workspace's last change number. A write updates its workspace's row
-- as its last statement: the row lock orders the commits of concurrent
-- writers, so numbers commit in order and without gaps.
CREATE TABLE change_counters (
    workspace_id uuid PRIMARY KEY REFERENCES workspaces (id),
    last_seq     bigint NOT NULL DEFAULT 0,
    -- Changes up to this number were pruned: a cursor before it has expired.
    pruned_seq   bigint NOT NULL DEFAULT 0
);
INSERT INTO change_counters (workspace_id) SELECT id FROM workspaces;

CREATE TABLE changes (
    workspace_id uuid NOT NULL,
    seq          bigint NOT NULL,
    kind         text NOT NULL,
    operation    text NOT NULL,
    record_id    text NOT NULL,
    external_id  text,
    owner_id     text,
    api_key_id   uuid NOT NULL,
    committed_at timestamptz NOT NULL,
    -- The record as the contract's message (what its Get returns), encoded.
    record       bytea NOT NULL,
    PRIMARY KEY (workspace_id, seq)
);
CREATE INDEX changes_by_record ON changes (workspace_id, record_id, seq);
CREATE INDEX changes_by_owner ON changes (workspace_id, owner_id, seq) WHERE owner_id IS NOT NULL;
CREATE INDEX changes_by_age ON changes (committed_at);

-- A committed write wakes the watchers of every replica: NOTIFY is delivered
-- at commit, and only then. It is only a wake-up; readers also poll.
CREATE FUNCTION kith_notify_change() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('kith_changes', NEW.workspace_id::text);
    RETURN NEW;
END
$$ LANGUAGE plpgsql;

CREATE TRIGGER change_counters_notify AFTER UPDATE OF last_seq ON change_counters
    FOR EACH ROW EXECUTE FUNCTION kith_notify_change();
