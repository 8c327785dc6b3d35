-- PBX user sync (issue 4): the last synced snapshot per (source, key) and the run log.

-- One row per user ever synced from a source. A deleted user stays as a tombstone
-- (deleted = 1) so its revision keeps counting: outbox idempotency keys are built from
-- (source, key, revision) and must never repeat, even when a user is deleted and later
-- re-created with the same key.
CREATE TABLE sync_snapshot (
    source_id    TEXT NOT NULL,
    source_key   TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    email_key    TEXT NOT NULL DEFAULT '',   -- normalized email, for the move rule
    user         TEXT NOT NULL,              -- JSON of the synced fields
    revision     INTEGER NOT NULL,
    absent_reads INTEGER NOT NULL DEFAULT 0, -- consecutive complete reads without it
    deleted      INTEGER NOT NULL DEFAULT 0,
    updated_at   REAL NOT NULL,
    PRIMARY KEY (source_id, source_key)
) STRICT, WITHOUT ROWID;

-- Every sync attempt (scheduled, "sync now", preview runs are not logged here).
CREATE TABLE sync_runs (
    id          TEXT PRIMARY KEY,
    source_id   TEXT NOT NULL,
    trigger     TEXT NOT NULL,               -- schedule | now
    actor       TEXT NOT NULL,
    started_at  REAL NOT NULL,
    finished_at REAL NOT NULL,
    result      TEXT NOT NULL,               -- ok | aborted | failed
    summary     TEXT NOT NULL DEFAULT '{}'   -- JSON
) STRICT;
CREATE INDEX sync_runs_started ON sync_runs(started_at);
