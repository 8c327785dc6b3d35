-- Cloud link (issue 3): results of mutating cloud commands by idempotency key, so a
-- command repeated after a reconnect or a daemon restart returns the first outcome
-- instead of running twice. Rows are pruned after a retention period.
CREATE TABLE link_idempotency (
    key         TEXT PRIMARY KEY,
    method      TEXT NOT NULL,
    outcome     TEXT NOT NULL,      -- JSON: {"result": ...} or {"error": {...}}
    created_at  REAL NOT NULL
) STRICT;
CREATE INDEX link_idempotency_created ON link_idempotency(created_at);
