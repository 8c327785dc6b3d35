"""The state dir is 0700 and its files 0600, whoever creates them; start-up repairs."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import sys
from pathlib import Path

import pytest

from clgwd.config import parse_config
from clgwd.store import Store
from clgwd.store.private import repair


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _modes(state: Path) -> dict[str, int]:
    return {str(p.relative_to(state)): _mode(p) for p in [state, *state.rglob("*")]}


async def test_enroll_before_the_daemon_leaves_a_private_state_dir(tmp_path: Path) -> None:
    """`clgwd enroll` (a failing one: the cloud port is closed) under umask 022 creates
    the state dir 0700 and the device key 0600; the daemon's store then adds state.db
    and its -wal/-shm as 0600: nothing readable by other users."""
    state = tmp_path / "var" / "clgwd"
    config = tmp_path / "clgwd.yaml"
    config.write_text(f"state: {{dir: '{state}'}}\ncloud: {{url: 'https://127.0.0.1:1'}}\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import os, sys; os.umask(0o022); from clgwd.cli import main; "
        "sys.exit(main(sys.argv[1:]))", "enroll", "-c", str(config), "--account", "acme",
        "--token-file", "-", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate(b"enroll-token-123\n")
    assert proc.returncode == 1 and b"enrollment failed" in out, out
    assert _mode(state) == 0o700
    old = os.umask(0o022)
    try:
        async with Store(parse_config(f"state: {{dir: '{state}'}}\n")) as store:
            await store.settings.set("k", 1)  # the WAL exists now
            modes = _modes(state)
    finally:
        os.umask(old)
    assert {"state.db", "state.db-wal", "cloud/device.key", "secret.key"} <= set(modes)
    loose = {p: oct(m) for p, m in modes.items() if m & 0o077}
    assert loose == {}


async def test_startup_tightens_a_loose_state_dir_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A state dir copied by hand (0755, files 0644, a 0755 subdir) is made 0700/0600
    when the store opens, with one warning naming what was too open."""
    state = tmp_path / "state"
    (state / "cloud").mkdir(parents=True)
    (state / "cloud" / "device.crt").write_text("x")
    (state / "notes.txt").write_text("x")
    for path, mode in ((state, 0o755), (state / "cloud", 0o755),
                       (state / "cloud" / "device.crt", 0o644), (state / "notes.txt", 0o640)):
        path.chmod(mode)
    with caplog.at_level(logging.WARNING):
        async with Store(parse_config(f"state: {{dir: '{state}'}}\n")):
            pass
    modes = _modes(state)
    assert modes["."] == 0o700 and modes["cloud"] == 0o700
    assert modes["cloud/device.crt"] == 0o600 and modes["notes.txt"] == 0o600
    warnings = [r.getMessage() for r in caplog.records if r.name == "clgwd.store.private"]
    assert len(warnings) == 1 and "(0755 -> 0700)" in warnings[0]
    assert "notes.txt (0640 -> 0600)" in warnings[0]


def test_repair_keeps_tighter_modes_and_symlinks(tmp_path: Path) -> None:
    """Owner bits are kept (a 0400 file stays 0400); symlinks are not followed."""
    (tmp_path / "ro").write_text("x")
    (tmp_path / "ro").chmod(0o444)
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.write_text("x")
    outside.chmod(0o644)
    (tmp_path / "link").symlink_to(outside)
    tmp_path.chmod(0o700)
    assert repair(tmp_path) == [f"{tmp_path / 'ro'} (0444 -> 0400)"]
    assert _mode(outside) == 0o644
    assert repair(tmp_path) == []
