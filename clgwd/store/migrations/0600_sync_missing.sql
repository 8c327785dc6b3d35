-- Sync safety (issue 15): the users a safety abort held back, per source, until the
-- technician keeps them (they become the new baseline, nothing is deleted in the cloud)
-- or confirms their deletion once, or a later run succeeds without them missing.
-- `set_id` names the exact set (clgwd.sync.diff.missing_set_id): a confirmation
-- of another set is refused as stale.
CREATE TABLE sync_missing_set (
    source_id  TEXT PRIMARY KEY,
    set_id     TEXT NOT NULL,
    count      INTEGER NOT NULL,
    active     INTEGER NOT NULL,    -- synced users before the read that aborted
    reason     TEXT NOT NULL,
    found_at   REAL NOT NULL,
    run_id     TEXT NOT NULL
) STRICT;

CREATE TABLE sync_missing (
    source_id  TEXT NOT NULL,
    source_key TEXT NOT NULL,
    PRIMARY KEY (source_id, source_key)
) STRICT, WITHOUT ROWID;
