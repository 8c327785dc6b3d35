"""The SQLite state database: one writer, explicit transactions, numbered migrations.

Why this shape: aiosqlite runs each connection on its own thread, so two coroutines
sharing a connection can interleave statements inside each other's transactions. All
writes therefore go through ``Database.transaction()``, which holds a lock and wraps the
work in ``BEGIN IMMEDIATE ... COMMIT`` on the writer connection. Reads use a second
connection and, thanks to WAL, see only committed data without blocking the writer.

A database that fails its integrity check is never recreated: the daemon refuses to
start and says how to recover, because silently starting over would lose the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final, Self

import aiosqlite

from clgwd.component import ComponentState, StatusTracker
from clgwd.config import ClgwdConfig
from clgwd.errors import StateError
from clgwd.store.private import create_private_file, make_private_dir, repair_with_warning

_LOGGER = logging.getLogger(__name__)

DB_FILENAME: Final = "state.db"
Params = Sequence[Any] | dict[str, Any]
_MIGRATION_NAME: Final = re.compile(r"([0-9]{4})_([a-z0-9_]+\.sql)")


@dataclass(frozen=True)
class Migration:
    """One numbered schema change, applied once, in order."""

    number: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """Read ``migrations/NNNN_name.sql`` shipped with the package (blocking I/O)."""
    migrations = []
    for entry in resources.files("clgwd.store.migrations").iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _MIGRATION_NAME.fullmatch(entry.name)
        if match is None:
            raise StateError(f"badly named migration file {entry.name!r}")
        number_text, rest = match.group(1), match.group(2)
        migrations.append(Migration(int(number_text), rest.removesuffix(".sql"),
                                    entry.read_text(encoding="utf-8")))
    migrations.sort(key=lambda m: m.number)
    numbers = [m.number for m in migrations]
    if len(numbers) != len(set(numbers)):
        raise StateError(f"duplicate migration numbers in package: {numbers}")
    return migrations


async def _begin(conn: aiosqlite.Connection) -> None:
    """``BEGIN IMMEDIATE`` that never leaves a transaction open behind a cancellation.

    The connection's thread runs each queued statement even when the coroutine that
    queued it is cancelled. A writer cancelled while its BEGIN waited in that queue (a
    link session closed by a goaway, a shutdown) used to release the write lock with the
    transaction open, and every later BEGIN failed ("cannot start a transaction within a
    transaction") until a restart. Cancelled, it now waits for its BEGIN and rolls it
    back, keeping the lock until then, and re-raises.
    """
    begin = asyncio.ensure_future(conn.execute("BEGIN IMMEDIATE"))
    try:
        await asyncio.shield(begin)
    except asyncio.CancelledError:
        await _uncancellable(_undo_begin(begin, conn))
        raise


async def _undo_begin(begin: asyncio.Future[Any], conn: aiosqlite.Connection) -> None:
    try:
        await begin
    except sqlite3.Error:
        return  # the BEGIN failed: there is no transaction to undo
    await _roll_back(conn)


async def _roll_back(conn: aiosqlite.Connection) -> None:
    """``ROLLBACK``; a failure is logged, not raised, so the error that made the caller
    roll back is the one it sees (SQLite may have rolled back by itself already)."""
    try:
        await conn.execute("ROLLBACK")
    except sqlite3.Error as err:
        _LOGGER.warning("State database: ROLLBACK failed: %s", err)


async def _commit(conn: aiosqlite.Connection) -> bool:
    """``COMMIT`` (rolled back if it fails, and the error raised), finished even when the
    caller is cancelled meanwhile: True then. The data is committed, so the caller runs
    its after-commit hooks (cache invalidation) before it re-raises the cancellation."""
    commit = asyncio.ensure_future(_commit_or_roll_back(conn))
    try:
        await asyncio.shield(commit)
    except asyncio.CancelledError:
        await _uncancellable(commit)
        return True
    return False


async def _commit_or_roll_back(conn: aiosqlite.Connection) -> None:
    try:
        await conn.execute("COMMIT")
    except sqlite3.Error:
        await _roll_back(conn)
        raise


async def _uncancellable(cleanup: Awaitable[Any]) -> None:
    """Await ``cleanup`` to the end, with the write lock still held, even if the caller
    is cancelled again meanwhile; the caller re-raises its own cancellation after."""
    task = asyncio.ensure_future(cleanup)
    while not task.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(task)
    task.result()


class Transaction:
    """The open write transaction handed to ``async with db.transaction() as tx``."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self._conn = conn
        self._after_commit: list[Callable[[], None]] = []

    async def execute(self, sql: str, params: Params = ()) -> aiosqlite.Cursor:
        return await self._conn.execute(sql, params)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        await self._conn.executemany(sql, rows)

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        async with self._conn.execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        async with self._conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    @property
    def total_changes(self) -> int:
        """Rows changed on this connection so far (to count what a statement did)."""
        return self._conn.total_changes

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` once the transaction has committed (not on rollback)."""
        self._after_commit.append(callback)


class Database:
    """The daemon's SQLite state, opened as a component (name ``store``)."""

    name = "store"

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / DB_FILENAME
        self.tracker = StatusTracker(self.name)
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

    async def __aenter__(self) -> Self:
        self.tracker.set(ComponentState.STARTING, f"opening {self.path}")
        await asyncio.to_thread(prepare_state_dir, self.state_dir)
        await asyncio.to_thread(_private_database, self.state_dir, self.path)
        try:
            self._writer = await self._connect()
            await self._check_integrity()
            await self._migrate()
            self._reader = await self._connect()
        except BaseException:
            await self._close()
            raise
        self.tracker.set(ComponentState.RUNNING, str(self.path))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.tracker.set(ComponentState.STOPPING)
        await self._close()
        self.tracker.set(ComponentState.STOPPED)

    async def run(self) -> None:
        """The store has no loops of its own."""

    async def apply_config(self, config: ClgwdConfig) -> None:
        if config.state.dir != self.state_dir:
            _LOGGER.warning("state.dir changed to %s; takes effect after a restart",
                            config.state.dir)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolls back and re-raises on any error."""
        conn = self._require(self._writer)
        async with self._write_lock:
            await _begin(conn)
            tx = Transaction(conn)
            try:
                yield tx
            except BaseException:
                await _uncancellable(_roll_back(conn))
                raise
            cancelled = await _commit(conn)
        for callback in tx._after_commit:
            callback()
        if cancelled:
            raise asyncio.CancelledError

    async def fetchone(self, sql: str, params: Params = ()) -> sqlite3.Row | None:
        """Read committed data (separate connection; never sees open transactions)."""
        async with self._require(self._reader).execute(sql, params) as cursor:
            return await cursor.fetchone()

    async def fetchall(self, sql: str, params: Params = ()) -> list[sqlite3.Row]:
        # One trip to the connection's thread (execute + fetch + close), not three: each
        # trip is a thread hand-off that then waits for the GIL.
        return list(await self._require(self._reader).execute_fetchall(sql, params))

    async def applied_migrations(self) -> list[int]:
        rows = await self.fetchall("SELECT number FROM schema_migrations ORDER BY number")
        return [row["number"] for row in rows]

    @staticmethod
    def _require(conn: aiosqlite.Connection | None) -> aiosqlite.Connection:
        if conn is None:
            raise StateError("state database is not open")
        return conn

    async def _connect(self) -> aiosqlite.Connection:
        try:
            conn = await aiosqlite.connect(self.path, isolation_level=None)
        except sqlite3.Error as err:
            raise StateError(f"cannot open state database {self.path}: {err}") from err
        conn.row_factory = sqlite3.Row
        try:
            mode = await _scalar(conn, "PRAGMA journal_mode=WAL")
            await conn.execute("PRAGMA synchronous=FULL")
            await conn.execute("PRAGMA busy_timeout=5000")
            await conn.execute("PRAGMA foreign_keys=ON")
        except sqlite3.DatabaseError as err:
            await conn.close()
            raise self._corrupted(err) from err
        except BaseException:
            await conn.close()
            raise
        if str(mode).lower() != "wal":
            await conn.close()
            raise StateError(f"state database {self.path} refused WAL mode ({mode})")
        return conn

    async def _check_integrity(self) -> None:
        conn = self._require(self._writer)
        try:
            result = await _scalar(conn, "PRAGMA quick_check")
        except sqlite3.DatabaseError as err:
            raise self._corrupted(err) from err
        if result != "ok":
            raise self._corrupted(str(result))

    def _corrupted(self, reason: object) -> StateError:
        return StateError(
            f"state database {self.path} is corrupted ({reason}); refusing to start so no "
            "queued data is lost. Restore a backup, or move the file aside to start empty."
        )

    async def _migrate(self) -> None:
        conn = self._require(self._writer)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " number INTEGER PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TEXT NOT NULL DEFAULT (datetime('now')))"
        )
        known = await asyncio.to_thread(load_migrations)
        async with conn.execute("SELECT number FROM schema_migrations") as cursor:
            applied = {row[0] for row in await cursor.fetchall()}
        unknown = applied - {m.number for m in known}
        if unknown:
            raise StateError(
                f"state database {self.path} has migrations {sorted(unknown)} that this "
                "version of clgwd does not know; it was written by a newer version"
            )
        for migration in known:
            if migration.number not in applied:
                await self._apply(conn, migration)

    async def _apply(self, conn: aiosqlite.Connection, migration: Migration) -> None:
        _LOGGER.info("Applying state migration %04d_%s", migration.number, migration.name)
        # The number and name come from validated package file names, not from input.
        script = (
            "BEGIN IMMEDIATE;\n"  # noqa: S608
            f"{migration.sql}\n;"
            f"INSERT INTO schema_migrations(number, name) VALUES ({migration.number:d}, "
            f"'{migration.name}');\n"  # name matched _MIGRATION_NAME: no quotes possible
            "COMMIT;"
        )
        try:
            await conn.executescript(script)
        except sqlite3.Error as err:
            if conn.in_transaction:
                await conn.execute("ROLLBACK")
            raise StateError(
                f"state migration {migration.number:04d}_{migration.name} failed: {err}"
            ) from err

    async def _close(self) -> None:
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        self._reader = self._writer = None


class ReadOnlyDatabase(Database):
    """The state database opened for reading only, by a tool that runs while no daemon
    does (``clgwd sync --preview`` without a daemon).

    It never writes, migrates, checks-and-repairs or takes the writer lock: the file is
    opened with SQLite's ``mode=ro``. When no ``-wal`` file exists (the daemon stopped
    cleanly and checkpointed), it is also opened ``immutable``, so SQLite creates no
    ``-wal``/``-shm`` files either: a root-owned ``-shm`` left behind by a tool run as
    root would lock the daemon's own user out of its database.
    """

    async def __aenter__(self) -> Self:
        uri = await asyncio.to_thread(self._read_only_uri)
        self._reader = await self._connect_read_only(uri)
        try:
            await self._check_schema()
        except BaseException:
            await self._close()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._close()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        raise StateError(f"state database {self.path} is open read-only")
        yield Transaction(self._require(self._writer))  # pragma: no cover - never reached

    def _read_only_uri(self) -> str:
        """The SQLite URI to open (blocking: looks at the files)."""
        if not self.path.is_file():
            raise StateError(f"no state database at {self.path}: the daemon has not run "
                             "with this state dir yet")
        immutable = "" if self.path.with_name(self.path.name + "-wal").exists() \
            else "&immutable=1"
        return f"{self.path.resolve().as_uri()}?mode=ro{immutable}"

    async def _connect_read_only(self, uri: str) -> aiosqlite.Connection:
        try:
            conn = await aiosqlite.connect(uri, uri=True, isolation_level=None)
        except sqlite3.Error as err:
            raise StateError(f"cannot open state database {self.path} read-only: "
                             f"{err}") from err
        conn.row_factory = sqlite3.Row
        return conn

    async def _check_schema(self) -> None:
        """The file must have exactly the migrations this version ships: a newer one
        may have changed the tables, an older one lacks some (and only the daemon
        migrates)."""
        try:
            rows = await self.fetchall("SELECT number FROM schema_migrations")
        except sqlite3.DatabaseError as err:
            raise self._corrupted(err) from err
        applied = {row[0] for row in rows}
        known = {m.number for m in await asyncio.to_thread(load_migrations)}
        if applied - known:
            raise StateError(f"state database {self.path} was written by a newer clgwd "
                             f"(migrations {sorted(applied - known)})")
        if known - applied:
            raise StateError(f"state database {self.path} is older than this clgwd; start "
                             "the daemon once so it migrates the database")


async def _scalar(conn: aiosqlite.Connection, sql: str) -> Any:
    async with conn.execute(sql) as cursor:
        row = await cursor.fetchone()
    return None if row is None else row[0]


def _private_database(state_dir: Path, path: Path) -> None:
    """Tighten a state dir left too open (warning), then create the database file 0600
    so SQLite's -wal and -shm files get that mode too (``clgwd.store.private``)."""
    repair_with_warning(state_dir)
    create_private_file(path)


def prepare_state_dir(state_dir: Path) -> None:
    """Create the state dir (0700) if needed and check it is writable (blocking)."""
    if state_dir.exists() and not state_dir.is_dir():
        raise StateError(f"state dir {state_dir} is not a directory")
    try:
        make_private_dir(state_dir)
    except OSError as err:
        raise StateError(f"cannot create state dir {state_dir}: {err.strerror}") from err
    if not os.access(state_dir, os.W_OK | os.X_OK):
        raise StateError(f"state dir {state_dir} is not writable by this user")
