"""The state database: WAL, migrations, transactions, refusal to lose data."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from clgwd.errors import StateError
from clgwd.store.db import Database, load_migrations


async def test_opens_in_wal_mode_and_applies_migrations(state_dir: Path) -> None:
    async with Database(state_dir) as db:
        row = await db.fetchone("PRAGMA journal_mode")
        assert row is not None and row[0] == "wal"
        migrations = await asyncio.to_thread(load_migrations)
        assert await db.applied_migrations() == [m.number for m in migrations]


async def test_reopen_does_not_reapply_migrations(state_dir: Path) -> None:
    async with Database(state_dir) as db:
        first = await db.applied_migrations()
    async with Database(state_dir) as db:
        assert await db.applied_migrations() == first


async def test_transaction_commits_and_rolls_back(state_dir: Path) -> None:
    async with Database(state_dir) as db:
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO settings(key, value) VALUES ('a', '1')")
        with pytest.raises(RuntimeError):
            async with db.transaction() as tx:
                await tx.execute("INSERT INTO settings(key, value) VALUES ('b', '2')")
                raise RuntimeError("boom")
        rows = await db.fetchall("SELECT key FROM settings ORDER BY key")
        assert [r["key"] for r in rows] == ["a"]


async def test_readers_never_see_uncommitted_writes(state_dir: Path) -> None:
    """Reads use their own connection: an open transaction is invisible until COMMIT."""
    async with Database(state_dir) as db:
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO settings(key, value) VALUES ('x', '1')")
            assert await db.fetchone("SELECT 1 FROM settings WHERE key = 'x'") is None
        assert await db.fetchone("SELECT 1 FROM settings WHERE key = 'x'") is not None


async def test_concurrent_transactions_are_serialized(state_dir: Path) -> None:
    """Two coroutines writing read-modify-write never interleave (no lost update)."""
    async with Database(state_dir) as db:
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO settings(key, value) VALUES ('n', '0')")

        async def bump() -> None:
            async with db.transaction() as tx:
                row = await tx.fetchone("SELECT value FROM settings WHERE key = 'n'")
                assert row is not None
                await asyncio.sleep(0)
                await tx.execute("UPDATE settings SET value = ? WHERE key = 'n'",
                                 (str(int(row["value"]) + 1),))

        async with asyncio.TaskGroup() as tg:
            for _ in range(20):
                tg.create_task(bump())
        row = await db.fetchone("SELECT value FROM settings WHERE key = 'n'")
        assert row is not None and row["value"] == "20"


SLOW_COUNT = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c "
              "WHERE x < 2000000) SELECT count(*) FROM c")
"""A query that keeps the writer connection's thread busy for a moment."""


async def _cancelled_while(db: Database, stage: str, hooks: list[str]) -> None:
    """A writer cancelled while its ``BEGIN`` (or its ``COMMIT``) waits behind other work
    in the connection's thread: the thread runs the statement anyway."""
    writer = db._writer
    assert writer is not None
    reached = asyncio.Event()

    async def write() -> None:
        async with db.transaction() as tx:
            tx.after_commit(lambda: hooks.append("committed"))
            await tx.execute("INSERT INTO settings(key, value) VALUES ('c', '1')")
            if stage == "commit":
                busy.append(asyncio.ensure_future(writer.execute(SLOW_COUNT)))
                await asyncio.sleep(0)
                reached.set()
        reached.set()

    busy = [asyncio.ensure_future(writer.execute(SLOW_COUNT))] if stage == "begin" else []
    await asyncio.sleep(0)  # the slow query is queued first
    task = asyncio.ensure_future(write())
    for _ in range(3):
        await asyncio.sleep(0)  # the writer holds the lock and waits for its BEGIN
    if stage == "commit":
        await reached.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.gather(*busy)


@pytest.mark.parametrize("stage", ["begin", "commit"])
async def test_a_writer_cancelled_mid_statement_leaves_no_transaction_open(
        state_dir: Path, stage: str) -> None:
    """Cancelled while its BEGIN waited in the connection's queue, a writer once left
    the connection inside a transaction: every later write failed with "cannot start a
    transaction within a transaction" until a restart (a loaded CI run, on a goaway).
    The next transaction works. Cancelled during its COMMIT, the write is committed and
    its after-commit hook (a cache invalidation) still runs."""
    hooks: list[str] = []
    async with Database(state_dir) as db:
        await _cancelled_while(db, stage, hooks)
        async with db.transaction() as tx:
            await tx.execute("INSERT INTO settings(key, value) VALUES ('after', '1')")
        rows = await db.fetchall("SELECT key FROM settings WHERE key IN ('c', 'after')")
        keys = sorted(r["key"] for r in rows)
    if stage == "begin":
        assert keys == ["after"] and hooks == []
    else:
        assert keys == ["after", "c"] and hooks == ["committed"]


async def test_after_commit_hooks_run_only_on_commit(state_dir: Path) -> None:
    calls: list[str] = []
    async with Database(state_dir) as db:
        async with db.transaction() as tx:
            tx.after_commit(lambda: calls.append("committed"))
        with pytest.raises(ValueError):
            async with db.transaction() as tx:
                tx.after_commit(lambda: calls.append("rolled back"))
                raise ValueError
    assert calls == ["committed"]


async def test_corrupted_database_is_refused_not_recreated(state_dir: Path) -> None:
    """A damaged file stops start-up with advice, and is left untouched."""
    db_path = state_dir / "state.db"
    garbage = b"this is not an sqlite database" * 200
    db_path.write_bytes(garbage)
    with pytest.raises(StateError, match="corrupted.*refusing to start"):
        async with Database(state_dir):
            pass
    assert db_path.read_bytes() == garbage


async def test_damaged_pages_are_detected(state_dir: Path) -> None:
    """Corruption inside a valid header is caught by the integrity check."""
    async with Database(state_dir) as db, db.transaction() as tx:
        await tx.executemany("INSERT INTO settings(key, value) VALUES (?, ?)",
                             [(f"k{i}", "v" * 200) for i in range(2000)])
    db_path = state_dir / "state.db"
    data = bytearray(db_path.read_bytes())
    page_size = int.from_bytes(data[16:18], "big")
    for offset in range(page_size * 3, page_size * 6):
        data[offset] = 0xA5
    db_path.write_bytes(bytes(data))
    with pytest.raises(StateError, match="corrupted"):
        async with Database(state_dir):
            pass


async def test_database_from_newer_version_is_refused(state_dir: Path) -> None:
    async with Database(state_dir) as db, db.transaction() as tx:
        await tx.execute("INSERT INTO schema_migrations(number, name) VALUES (9999, 'x')")
    with pytest.raises(StateError, match=r"\[9999\].*newer version"):
        async with Database(state_dir):
            pass


async def test_state_dir_not_writable_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateError, match="cannot create state dir"):
        async with Database(blocker / "state"):
            pass
    with pytest.raises(StateError, match="is not a directory"):
        async with Database(blocker):
            pass


async def test_state_dir_created_private(tmp_path: Path) -> None:
    target = tmp_path / "new" / "state"
    async with Database(target):
        pass
    assert (target.stat().st_mode & 0o777) == 0o700


def test_migrations_are_numbered_and_unique() -> None:
    migrations = load_migrations()
    numbers = [m.number for m in migrations]
    assert numbers == sorted(set(numbers))
    assert numbers[0] == 1
    for migration in migrations:
        sqlite3.complete_statement(migration.sql)
