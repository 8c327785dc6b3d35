-- Core tables of the foundation: settings, outbox, events (history), alerts, secrets.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL            -- JSON
) STRICT;

-- Every record for the cloud. Written in the same transaction as the state change it
-- reports; delivered in seq order, at least once; the cloud de-duplicates by
-- (gateway id, seq). Acked rows are kept for a while so a repeated idempotency key
-- stays a no-op, then pruned.
CREATE TABLE outbox (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    coalesce_key    TEXT,
    payload         TEXT NOT NULL,  -- JSON
    created_at      REAL NOT NULL,
    acked_at        REAL
) STRICT;
CREATE INDEX outbox_pending ON outbox(seq) WHERE acked_at IS NULL;
CREATE INDEX outbox_coalesce ON outbox(coalesce_key) WHERE acked_at IS NULL AND coalesce_key IS NOT NULL;

-- Event history in the vendor's shape (Event ID, actor, action, asset, date, changes).
CREATE TABLE events (
    id                 TEXT PRIMARY KEY,
    at                 REAL NOT NULL,
    actor              TEXT NOT NULL,
    action             TEXT NOT NULL,
    asset              TEXT NOT NULL,
    subject            TEXT NOT NULL DEFAULT '',
    properties_changed TEXT NOT NULL DEFAULT '[]',   -- JSON list of names
    core               TEXT NOT NULL DEFAULT '{}',   -- JSON
    extra              TEXT NOT NULL DEFAULT '{}'    -- JSON
) STRICT;
CREATE INDEX events_at ON events(at);
CREATE INDEX events_asset_action ON events(asset, action, at);

CREATE TABLE alerts (
    code       TEXT PRIMARY KEY,
    severity   TEXT NOT NULL,
    message    TEXT NOT NULL,
    since      REAL NOT NULL,
    cleared_at REAL
) STRICT;

-- Secrets at rest, AES-GCM under the key file; the name is the associated data.
CREATE TABLE secrets (
    name       TEXT PRIMARY KEY,
    ciphertext TEXT NOT NULL
) STRICT;
