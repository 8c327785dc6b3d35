"""kill -9 at any moment loses nothing and doubles nothing."""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import sys
from pathlib import Path

import pytest

from clgwd.config import parse_config
from clgwd.store import Store
from tests.daemon.proc import DaemonProcess, write_config

pytestmark = pytest.mark.slow
WORKER = [sys.executable, "-m", "tests.store.crash_worker"]
ROOT = Path(__file__).resolve().parents[2]


async def _spawn(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *WORKER, *args, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)


async def _kill_after_lines(proc: asyncio.subprocess.Process, lines: int) -> list[str]:
    """Read ``lines`` committed ids, then SIGKILL mid-stream; return what was printed."""
    assert proc.stdout is not None
    seen = []
    while len(seen) < lines:
        raw = await asyncio.wait_for(proc.stdout.readline(), 30)
        if not raw:
            break
        seen.append(raw.decode().strip())
    proc.kill()
    rest, _ = await proc.communicate()
    seen.extend(line for line in rest.decode().splitlines() if line)
    return seen


def _check_consistent(state_dir: Path) -> tuple[int, int]:
    with sqlite3.connect(state_dir / "state.db") as conn:
        events = {r[0] for r in conn.execute("SELECT id FROM events")}
        keys = [r[0] for r in conn.execute("SELECT idempotency_key FROM outbox ORDER BY seq")]
        seqs = [r[0] for r in conn.execute("SELECT seq FROM outbox ORDER BY seq")]
        counter = conn.execute("SELECT value FROM settings WHERE key='counter'").fetchone()
    assert len(keys) == len(set(keys)), "an outbox record was doubled"
    assert {f"event:{e}" for e in events} == set(keys), "state and outbox disagree"
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "gap in outbox seq"
    assert counter is not None and int(counter[0]) == len(events) - 1
    return len(events), seqs[-1]


async def test_kill9_during_writes_keeps_state_and_outbox_in_step(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    committed: list[str] = []
    for _round in range(4):
        proc = await _spawn("write", str(state_dir))
        committed += await _kill_after_lines(proc, random.randint(50, 400))
        assert proc.returncode == -signal.SIGKILL
        total, _ = await asyncio.to_thread(_check_consistent, state_dir)
        assert total >= len(committed), "a committed record was lost"
    async with Store(parse_config(f"state: {{dir: {state_dir}}}")) as store:
        pending = await store.outbox.pending(limit=100_000)
        assert {f"event:{e}" for e in committed} <= {r.idempotency_key for r in pending}


async def test_kill9_during_delivery_gives_exactly_once_after_dedup(tmp_path: Path) -> None:
    """At-least-once delivery + the cloud's de-dup by seq = every record once, in order."""
    state_dir = tmp_path / "state"
    writer = await _spawn("write", str(state_dir))
    await _kill_after_lines(writer, 1500)
    total, last_seq = await asyncio.to_thread(_check_consistent, state_dir)
    cloud = tmp_path / "cloud.db"
    for _round in range(30):
        proc = await _spawn("deliver", str(state_dir), str(cloud))
        await asyncio.sleep(random.uniform(0.2, 0.6))
        assert proc.stdout is not None
        if proc.returncode is None:
            proc.kill()
        out, _ = await proc.communicate()
        if b"drained" in out:
            break
    else:
        pytest.fail("delivery never drained")
    with sqlite3.connect(cloud) as conn:
        received = [r[0] for r in conn.execute("SELECT seq FROM received ORDER BY seq")]
        deliveries = conn.execute("SELECT count(*) FROM deliveries").fetchone()[0]
    assert received == list(range(1, last_seq + 1))
    assert len(received) == total
    assert deliveries >= total  # redeliveries after kills are expected and harmless


async def test_kill9_of_the_daemon_during_reload_storm(tmp_path: Path) -> None:
    """The real daemon records each applied reload; kill -9 mid-storm, restart, check."""
    config = write_config(tmp_path)
    for _round in range(3):
        daemon = await DaemonProcess.start(config)
        await daemon.wait_for_line("ready:")
        for _ in range(random.randint(20, 60)):
            daemon.send(signal.SIGHUP)
            await asyncio.sleep(0.005)
        await asyncio.sleep(random.uniform(0.0, 0.2))
        await daemon.kill()
        assert daemon.proc.returncode == -signal.SIGKILL
        logged = sum("Config reloaded" in line for line in daemon.lines)
        with sqlite3.connect(tmp_path / "state" / "state.db") as conn:
            events = conn.execute("SELECT count(*) FROM events").fetchone()[0]
        assert events >= logged
    total, _ = await asyncio.to_thread(_check_events_match_outbox, tmp_path / "state")
    assert total > 0
    daemon = await DaemonProcess.start(config)
    await daemon.wait_for_line("ready:")
    daemon.send(signal.SIGTERM)
    assert await daemon.wait() == 0


def _check_events_match_outbox(state_dir: Path) -> tuple[int, int]:
    with sqlite3.connect(state_dir / "state.db") as conn:
        events = {r[0] for r in conn.execute("SELECT id FROM events")}
        keys = [r[0] for r in conn.execute("SELECT idempotency_key FROM outbox")]
    assert len(keys) == len(set(keys))
    assert {f"event:{e}" for e in events} == set(keys)
    return len(events), len(keys)
