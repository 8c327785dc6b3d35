#!/usr/bin/python3
"""Release layout, atomic switch and automatic rollback; standard library ONLY.

This file is also the standalone rollback program (the image installs it as
``/usr/lib/clgwd/clgwd-rollback``; systemd runs it with the system python3 from
``clgwd-rollback.service``, started by ``OnFailure=`` of clgwd.service and by
``clgwd-update-deadline.timer``). It must work when the new release cannot even be
imported, so it never imports clgwd; the daemon imports it for the same layout rules.

Layout under the release root (``system.release_root``, default ``/opt/clgwd``)::

    releases/<version>/            a venv with bin/clgwd; .clgwd-release-complete last
    current -> releases/<version>  relative symlink, replaced atomically (rename)
    update-marker.json             written BEFORE the switch: previous, new, deadline
    update-note.json               written by a rollback: what happened and why

Every step is safe to cut (power loss, kill -9) and safe to repeat:
marker written, not switched -> the marker is dropped ("interrupted before the
switch"); switched, not confirmed by the new daemon before the deadline, or the unit
failed -> note, switch back, marker dropped, restart. A reboot during the trial (power
cut) gives the new release one fresh trial period in the next boot (``boot_at``). The
daemon confirms a healthy update by deleting the marker.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Final, TextIO

RELEASES: Final = "releases"
CURRENT: Final = "current"
MARKER: Final = "update-marker.json"
NOTE: Final = "update-note.json"
COMPLETE: Final = ".clgwd-release-complete"
KEEP_RELEASES: Final = 2
BOOT_SLACK: Final = 30.0
"""Seconds two boot-time readings may differ by (clock steps) and still be one boot."""
UNIT: Final = "clgwd.service"
LOG_ERR: Final = 3
LOG_WARNING: Final = 4
LOG_INFO: Final = 6
REASONS: Final = {
    "unit-failed": "the new release kept failing to start (systemd gave up restarting it)",
    "deadline": "the new release did not report healthy before the deadline",
    "unhealthy": "the new release did not report healthy before the deadline",
}


class LayoutError(Exception):
    """The release root is not in the expected shape (message says what is wrong)."""


# -- layout -----------------------------------------------------------------------------------


def release_dir(root: Path, version: str) -> Path:
    if not version or "/" in version or version.startswith("."):
        raise LayoutError(f"{version!r} is not a release version")
    return root / RELEASES / version


def is_complete(root: Path, version: str) -> bool:
    path = release_dir(root, version)
    return (path / COMPLETE).is_file() and (path / "bin" / "clgwd").exists()


def current_version(root: Path) -> str | None:
    """The version ``current`` points at, or None when there is no link."""
    try:
        target = os.readlink(root / CURRENT)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise LayoutError(f"{root / CURRENT} is not a symlink: {err.strerror}") from None
    parts = Path(target).parts
    if len(parts) != 2 or parts[0] != RELEASES:
        raise LayoutError(f"{root / CURRENT} points at {target}, not {RELEASES}/<version>")
    return parts[1]


def switch(root: Path, version: str) -> None:
    """Point ``current`` at ``releases/<version>`` in one rename (readers see old or new)."""
    if not is_complete(root, version):
        raise LayoutError(f"release {version} is not completely installed under "
                          f"{root / RELEASES}")
    tmp = root / f".{CURRENT}.new"
    tmp.unlink(missing_ok=True)
    os.symlink(f"{RELEASES}/{version}", tmp)
    os.replace(tmp, root / CURRENT)
    sync_dir(root)


def sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write, fsync, rename, fsync the directory: the file is old, new, or absent.

    The temp file is created afresh and never followed: this program runs as root in a
    directory the daemon's user can write, where a planted symlink must not redirect it.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    sync_dir(path.parent)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when absent or unreadable (a damaged file is
    renamed aside so it cannot block every later run)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        path.replace(path.with_name(path.name + ".damaged"))
        return None
    return data if isinstance(data, dict) else None


def remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    sync_dir(path.parent)


def installed(root: Path) -> list[str]:
    """The complete releases on disk, oldest version first (what a rollback can use)."""
    releases = root / RELEASES
    if not releases.is_dir():
        return []
    found = [e.name for e in releases.iterdir()
             if not e.name.startswith(".") and is_complete(root, e.name)]
    return sorted(found, key=lambda v: [int(x) if x.isdigit() else -1 for x in v.split(".")])


def prune(root: Path, keep: set[str]) -> list[str]:
    """Remove every release dir (complete or not) that is not in ``keep``."""
    removed: list[str] = []
    releases = root / RELEASES
    if not releases.is_dir():
        return removed
    for entry in sorted(releases.iterdir()):
        if entry.name not in keep:
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry.name)
    return removed


# -- trial across a reboot --------------------------------------------------------------------


def boot_time(now: float | None = None) -> float:
    """When this machine booted, on the wall clock (CLOCK_BOOTTIME: no /proc needed,
    which the daemon's sandbox hides)."""
    now = time.time() if now is None else now
    return now - time.clock_gettime(time.CLOCK_BOOTTIME)


def renew_after_reboot(root: Path, now: float | None = None,
                       booted: float | None = None) -> dict[str, Any] | None:
    """The marker, with one fresh trial period if the machine rebooted since the switch.

    A power cut during the trial would otherwise roll back a release that never had
    its chance (the deadline passes while the power is off). One renewal only: a
    release that takes the machine down again is rolled back at the next deadline.
    """
    now = time.time() if now is None else now
    marker = read_json(root / MARKER)
    if marker is None or marker.get("renewed") or current_version(root) != marker.get("new"):
        return marker
    booted = boot_time() if booted is None else booted
    switched_boot = marker.get("boot_at")
    if not isinstance(switched_boot, int | float) or abs(booted - switched_boot) < BOOT_SLACK:
        return marker
    period = float(marker.get("deadline", 0)) - float(marker.get("started_at", 0))
    marker = {**marker, "deadline": now + max(period, 0.0), "boot_at": booted,
              "renewed": True}
    write_json(root / MARKER, marker)
    return marker


# -- rollback ---------------------------------------------------------------------------------


def rollback(root: Path, reason: str, now: float | None = None) -> str:
    """Do what the marker asks, if anything; return what was done (one line).

    ``reason`` "deadline" acts only once the marker's deadline has passed; "unit-failed"
    (OnFailure=) and "unhealthy" (the daemon itself) act at once.
    """
    now = time.time() if now is None else now
    marker = read_json(root / MARKER)
    if marker is None:
        return "no update under way"
    previous, new = str(marker.get("previous", "")), str(marker.get("new", ""))
    current = current_version(root)
    if current != new:
        # Cut before the switch, or the switch back already happened (then the note is
        # written): either way the running release is the one to keep.
        if (root / NOTE).exists():
            remove(root / MARKER)
            return f"rollback to {current} already done"
        write_json(root / NOTE, {"outcome": "abandoned", "from": new, "to": current,
                                 "reason": "interrupted before the switch", "at": now})
        remove(root / MARKER)
        return f"update to {new} was interrupted before the switch; {current} stays"
    if reason == "deadline":
        marker = renew_after_reboot(root, now) or marker
    deadline = float(marker.get("deadline", 0))
    if reason == "deadline" and now < deadline:
        return f"update to {new} on trial for {deadline - now:.0f} s more"
    if not previous or not is_complete(root, previous):
        write_json(root / NOTE, {"outcome": "stuck", "from": new, "to": new, "at": now,
                                 "reason": f"{REASONS.get(reason, reason)}, but the previous "
                                           f"release {previous or '?'} is not installed"})
        remove(root / MARKER)
        return f"cannot roll back: release {previous or '?'} is not installed"
    write_json(root / NOTE, {"outcome": "rolled_back", "from": new, "to": previous,
                             "reason": REASONS.get(reason, reason), "at": now,
                             "started_at": marker.get("started_at")})
    switch(root, previous)
    remove(root / MARKER)
    return f"rolled back from {new} to {previous}: {REASONS.get(reason, reason)}"


def restart_unit(unit: str) -> None:
    for argv in (["systemctl", "reset-failed", unit], ["systemctl", "restart", "--no-block",
                                                        unit]):
        subprocess.run(argv, check=False, timeout=60)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="clgwd-rollback",
        description="Switch clgwd back to the previous release when an update did not "
                    "become healthy (standard library only; never imports clgwd).")
    parser.add_argument("--root", type=Path, default=Path("/opt/clgwd"),
                        help="release root (system.release_root; default /opt/clgwd)")
    parser.add_argument("--reason", choices=sorted(REASONS), default="deadline")
    parser.add_argument("--unit", default=UNIT, help=f"unit to restart (default {UNIT})")
    parser.add_argument("--no-restart", action="store_true",
                        help="switch only; do not restart the unit")
    args = parser.parse_args(argv)
    try:
        outcome = rollback(args.root, args.reason)
    except (LayoutError, OSError) as err:
        say(LOG_ERR, f"clgwd-rollback: {err}", sys.stderr)
        return 1
    say(outcome_level(outcome), f"clgwd-rollback: {outcome}", sys.stdout)
    rolled_back = outcome.startswith(("rolled back", "rollback to"))
    if rolled_back and not args.no_restart:
        restart_unit(args.unit)
    return 0


def outcome_level(outcome: str) -> int:
    """Nothing to do (no marker, still on trial) is info; a switch back or an abandoned
    update is a warning; a rollback that cannot happen is an error."""
    if outcome == "no update under way" or " on trial for " in outcome:
        return LOG_INFO
    return LOG_ERR if outcome.startswith("cannot") else LOG_WARNING


def say(level: int, text: str, stream: TextIO) -> None:
    """One line, with its syslog level as a ``<N>`` prefix when the stream is the journal
    (systemd sets JOURNAL_STREAM): the deadline unit keeps only warnings and worse
    (LogLevelMax=warning), so a rollback shows and "still on trial" does not."""
    prefix = f"<{level}>" if os.environ.get("JOURNAL_STREAM") else ""
    print(prefix + text, file=stream, flush=True)


if __name__ == "__main__":
    sys.exit(main())
