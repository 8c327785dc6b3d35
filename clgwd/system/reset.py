"""Factory reset, crash-safe: a marker first, the wipe at the next start.

``request_reset`` writes ``<state dir>/factory-reset.pending`` (fsynced) before anything
else; the daemon then restarts. ``ResetGate``, the first component the daemon enters,
finds the marker before any other part opens the state dir and removes everything in
it: the database (admin password hash, device key, site, PBX settings and credentials,
sync snapshot and history, network overrides, idempotency records), the secret-box key
(so any leftover ciphertext on the disk is unreadable), the cloud enrollment identity,
the HTTPS certificate and the DHCP leases. The marker goes last, so a wipe interrupted
half way is simply done again at the next start: the gateway never comes up looking
configured with part of its state gone. The config file is not state and is kept.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Final, Self

from clgwd.component import ComponentState, StatusTracker
from clgwd.config import ClgwdConfig

_LOGGER = logging.getLogger(__name__)

PENDING_MARKER: Final = "factory-reset.pending"
DONE_NOTE: Final = "factory-reset.done"
"""Left by the wipe for the system component to record the event in the new database."""
SHARED_DIRS: Final = frozenset(Path("/", *parts) for parts in (
    (), ("etc",), ("home",), ("opt",), ("root",), ("run",), ("srv",), ("tmp",), ("usr",),
    ("var",), ("var", "lib"), ("var", "tmp"), ("var", "cache"), ("var", "log")))
"""A state dir misconfigured as one of these is never wiped: other software lives there."""


class UnsafeStateDir(Exception):
    """The state dir is a shared system directory; wiping it would delete other data."""


def check_wipeable(state_dir: Path) -> None:
    """Refuse a state dir that is a shared system directory (blocking: resolves it)."""
    resolved = state_dir.resolve()
    if resolved in SHARED_DIRS or resolved == Path.home():
        raise UnsafeStateDir(f"state.dir is {resolved}, a shared directory; a factory "
                             "reset would delete other software's files there")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_durably(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with open(fd, "w", encoding="utf-8") as out:  # 0600 like all state (store/private)
        json.dump(data, out)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def write_marker(state_dir: Path, actor: str) -> None:
    """Commit to the reset (blocking). From here on the next start wipes the state."""
    check_wipeable(state_dir)
    _write_durably(state_dir / PENDING_MARKER, {"actor": actor, "requested_at": time.time()})


def reset_pending(state_dir: Path) -> bool:
    return (state_dir / PENDING_MARKER).exists()


def finish_pending_reset(state_dir: Path) -> dict[str, Any] | None:
    """Wipe the state dir if a reset is pending (blocking); returns the marker's data."""
    marker = state_dir / PENDING_MARKER
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
    except (FileNotFoundError, PermissionError):
        return None  # no reset; an unusable state dir is the store's to report
    except (OSError, ValueError):
        data = {}  # a damaged marker still means "reset": it is written before anything
    if not isinstance(data, dict):
        data = {}
    check_wipeable(state_dir)
    for entry in state_dir.iterdir():
        if entry.name == PENDING_MARKER:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    _fsync_dir(state_dir)
    info = {"actor": str(data.get("actor", "unknown")),
            "requested_at": data.get("requested_at"), "completed_at": time.time()}
    _write_durably(state_dir / DONE_NOTE, info)
    marker.unlink()
    _fsync_dir(state_dir)
    return info


def take_done_note(state_dir: Path) -> dict[str, Any] | None:
    """The completed reset's note, removed once read (blocking)."""
    note = state_dir / DONE_NOTE
    try:
        data = json.loads(note.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        data = {}
    note.unlink(missing_ok=True)
    return data if isinstance(data, dict) else {}


class ResetGate:
    """Component ``reset``: finishes a pending factory reset before the store opens."""

    name = "reset"

    def __init__(self, config: ClgwdConfig) -> None:
        self.tracker = StatusTracker(self.name)
        self._state_dir = config.state.dir

    async def __aenter__(self) -> Self:
        self.tracker.set(ComponentState.STARTING)
        if await asyncio.to_thread(self._state_dir.is_dir):
            done = await asyncio.to_thread(finish_pending_reset, self._state_dir)
            if done is not None:
                _LOGGER.warning("Factory reset completed (requested by %s): state dir %s "
                                "wiped", done["actor"], self._state_dir)
        self.tracker.set(ComponentState.RUNNING)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.tracker.set(ComponentState.STOPPED)

    async def run(self) -> None:
        """No loops of its own."""

    async def apply_config(self, config: ClgwdConfig) -> None:
        """The state dir cannot change at run time (the store keeps the open one)."""
