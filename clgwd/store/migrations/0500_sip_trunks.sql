-- SIP trunks (issue 16): the trunks the gateway checks with OPTIONS, and the SIP Trunk
-- Application Setup that derives two of them. Specs are JSON (clgwd.sip.model.TrunkSpec);
-- digest passwords live encrypted in `secrets` as sip.trunk.<name>.password.
CREATE TABLE sip_trunks (
    name       TEXT PRIMARY KEY,
    spec       TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
) STRICT;

CREATE TABLE sip_app_setup (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    setup      TEXT NOT NULL,
    updated_at REAL NOT NULL
) STRICT;
