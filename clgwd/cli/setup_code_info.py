"""``clgwd setup-code``: read the setup code and certificate fingerprint offline.

It reads the state dir directly (read-only), so it works whether or not the daemon runs
and needs no password: the key file is readable by root only, which is the proof of
physical (console) access the setup code stands for.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from clgwd.store.db import DB_FILENAME
from clgwd.store.secretbox import KEY_FILENAME, SecretBox
from clgwd.web.auth import ADMIN_HASH_SECRET, DEVICE_KEY_SECRET, setup_code_from_key
from clgwd.web.tls import load_fingerprint


@dataclass(frozen=True)
class SetupInfo:
    code: str | None
    password_set: bool
    fingerprint: str | None


def read_setup_info(state_dir: Path) -> SetupInfo:
    """Blocking; for the CLI only. Raises OSError/sqlite3.Error when unreadable."""
    db_path = state_dir / DB_FILENAME
    if not db_path.exists():
        return SetupInfo(None, False, None)
    conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        rows = dict(conn.execute(
            "SELECT name, ciphertext FROM secrets WHERE name IN (?, ?)",
            (DEVICE_KEY_SECRET, ADMIN_HASH_SECRET)).fetchall())
    finally:
        conn.close()
    code = None
    if DEVICE_KEY_SECRET in rows:
        box = SecretBox((state_dir / KEY_FILENAME).read_bytes())
        code = setup_code_from_key(box.decrypt(DEVICE_KEY_SECRET,
                                               rows[DEVICE_KEY_SECRET]).reveal())
    return SetupInfo(code, ADMIN_HASH_SECRET in rows, load_fingerprint(state_dir))
