-- Tunnel audit log (issue 7): append-only and hash-chained. Each row's hash covers the
-- previous row's hash, so deleting or editing a row breaks verification from that row
-- on; the triggers make accidental updates and deletes fail outright.
CREATE TABLE tunnel_audit (
    seq       INTEGER PRIMARY KEY,
    at        REAL NOT NULL,
    type      TEXT NOT NULL,
    record    TEXT NOT NULL,          -- JSON, canonical (sorted keys)
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL
) STRICT;
CREATE INDEX tunnel_audit_at ON tunnel_audit(at);

CREATE TRIGGER tunnel_audit_no_update BEFORE UPDATE ON tunnel_audit
BEGIN SELECT RAISE(ABORT, 'tunnel_audit is append-only'); END;

CREATE TRIGGER tunnel_audit_no_delete BEFORE DELETE ON tunnel_audit
BEGIN SELECT RAISE(ABORT, 'tunnel_audit is append-only'); END;
