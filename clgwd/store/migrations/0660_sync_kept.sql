-- Kept users (issue 15): "Keep these users" after a sync safety abort leaves them in the
-- cloud although they are no longer on the PBX. Their snapshot rows become tombstones
-- like deleted users (deleted = 1), so `kept_at` tells the two apart: set when the
-- technician kept the user, cleared when the user comes back to the PBX (the sync
-- writes the row again). The Overview counts and lists them.
ALTER TABLE sync_snapshot ADD COLUMN kept_at REAL;
