"""The state directory is private: the dir and every dir in it 0700, every file 0600.

It holds the secret-box key, the device key, password hashes and the customer's
directory, so no other local user may read any of it, whichever process created it
(``clgwd enroll`` run before the daemon ever started used to leave it 0755 under umask
022, and SQLite then created ``state.db`` 0644). ``make_private_dir`` creates it 0700;
``create_private_file`` makes an empty file 0600 before a library opens it (SQLite gives
its ``-wal``/``-shm`` files the database file's mode); ``repair`` tightens what an
older version or a hand copy left looser, and says what it changed. Blocking I/O.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path
from typing import Final

_LOGGER = logging.getLogger(__name__)

DIR_MODE: Final = 0o700
FILE_MODE: Final = 0o600
_LOOSE: Final = stat.S_IRWXG | stat.S_IRWXO


def make_private_dir(path: Path) -> None:
    """Create ``path`` 0700 (missing parents keep the system's default mode)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=DIR_MODE)  # the umask can only make it tighter
    if stat.S_IMODE(path.stat().st_mode) & _LOOSE:
        os.chmod(path, DIR_MODE)


def create_private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 unless it exists."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE))


def repair(state_dir: Path) -> list[str]:
    """Remove group and other permissions under ``state_dir`` (itself included; symlinks
    are left alone); return the paths changed, as ``path (0755 -> 0700)``."""
    changed: list[str] = []
    for root, dirs, files in os.walk(state_dir):
        here = Path(root)
        entries = [here] if here == state_dir else []
        entries += [here / name for name in (*dirs, *files)]
        for path in entries:
            try:
                info = path.lstat()
            except FileNotFoundError:
                continue
            mode = stat.S_IMODE(info.st_mode)
            if stat.S_ISLNK(info.st_mode) or not mode & _LOOSE:
                continue
            new = mode & ~_LOOSE
            os.chmod(path, new)
            changed.append(f"{path} ({mode:04o} -> {new:04o})")
    return changed


def repair_with_warning(state_dir: Path) -> None:
    """``repair``, logging one warning that lists what was too open."""
    changed = repair(state_dir)
    if changed:
        shown = ", ".join(changed[:10]) + (f" and {len(changed) - 10} more"
                                           if len(changed) > 10 else "")
        _LOGGER.warning("State dir %s was readable by other users; tightened %d path(s): "
                        "%s", state_dir, len(changed), shown)
