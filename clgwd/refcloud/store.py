"""The reference cloud's SQLite store: accounts, tokens, gateways, records, users.

One aiosqlite connection; every write is one ``BEGIN IMMEDIATE`` transaction under a
lock. Records pushed by a gateway are de-duplicated by ``(gateway_id, seq)``: a record
at or below the gateway's ``last_seq`` (per outbox epoch) was stored before and is
skipped, which makes
the gateway's at-least-once delivery exactly-once here.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final, Self

import aiosqlite

_LOGGER = logging.getLogger(__name__)

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS accounts (
    id TEXT PRIMARY KEY, created_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id),
    uses_left INTEGER NOT NULL, expires_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS gateways (
    id TEXT PRIMARY KEY, account_id TEXT NOT NULL REFERENCES accounts(id),
    enrolled_at REAL NOT NULL, cert_serial TEXT NOT NULL, cert_not_after REAL NOT NULL,
    revoked INTEGER NOT NULL DEFAULT 0, online INTEGER NOT NULL DEFAULT 0,
    last_seen REAL, version TEXT, capabilities TEXT NOT NULL DEFAULT '[]',
    last_seq INTEGER NOT NULL DEFAULT 0, epoch TEXT NOT NULL DEFAULT '',
    status TEXT, sync_result TEXT);
CREATE TABLE IF NOT EXISTS records (
    gateway_id TEXT NOT NULL, epoch TEXT NOT NULL, seq INTEGER NOT NULL,
    kind TEXT NOT NULL, payload TEXT NOT NULL, created_at REAL NOT NULL,
    received_at REAL NOT NULL, PRIMARY KEY (gateway_id, epoch, seq));
CREATE INDEX IF NOT EXISTS records_kind ON records(gateway_id, kind, seq);
CREATE TABLE IF NOT EXISTS users (
    gateway_id TEXT NOT NULL, source_id TEXT NOT NULL, source_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL, user TEXT NOT NULL, updated_at REAL NOT NULL,
    PRIMARY KEY (gateway_id, source_id, source_key));
CREATE INDEX IF NOT EXISTS users_by_key ON users(gateway_id, source_key, source_id);
CREATE TABLE IF NOT EXISTS inventory (
    gateway_id TEXT PRIMARY KEY, payload TEXT NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY AUTOINCREMENT, gateway_id TEXT NOT NULL, method TEXT NOT NULL,
    params TEXT NOT NULL, idempotency_key TEXT NOT NULL, sent_at REAL NOT NULL,
    outcome TEXT, finished_at REAL);
"""
STATUS_KINDS: Final = frozenset({"status"})


class TokenRejected(Exception):
    """Enrollment token unknown, expired or used up (``status`` is the HTTP status)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class PushRejected(ValueError):
    """An ``event.push`` batch is malformed (not ascending, bad record shape)."""


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class CloudStore:
    """All persistent state of the reference cloud."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: aiosqlite.Connection | None = None
        self._lock = asyncio.Lock()
        self.duplicates_skipped = 0
        """Records received again after a lost ack (counted, not stored twice)."""

    async def __aenter__(self) -> Self:
        self._conn = await aiosqlite.connect(self.path, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        await self._conn.execute("PRAGMA journal_mode=WAL")
        await self._conn.executescript(SCHEMA)
        await self._conn.execute("UPDATE gateways SET online = 0")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    @property
    def conn(self) -> aiosqlite.Connection:
        if self._conn is None:
            raise RuntimeError("cloud store is not open")
        return self._conn

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            try:
                await self.conn.execute("BEGIN IMMEDIATE")
            except asyncio.CancelledError:
                # The BEGIN is already queued in aiosqlite's thread and will run; a
                # ROLLBACK queued behind it keeps the next transaction from failing
                # with "cannot start a transaction within a transaction".
                with contextlib.suppress(sqlite3.Error):
                    await asyncio.shield(self.conn.execute("ROLLBACK"))
                raise
            try:
                yield self.conn
            except BaseException:
                await asyncio.shield(self.conn.execute("ROLLBACK"))
                raise
            await asyncio.shield(self.conn.execute("COMMIT"))

    async def fetchall(self, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        async with self.conn.execute(sql, params) as cur:
            return list(await cur.fetchall())

    async def fetchone(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Row | None:
        async with self.conn.execute(sql, params) as cur:
            return await cur.fetchone()

    # -- accounts and enrollment ------------------------------------------------------------

    async def create_token(self, account_id: str, uses: int = 1,
                           ttl: float = 24 * 3600) -> str:
        """Create the account if needed and a new enrollment token (shown once)."""
        token = secrets.token_urlsafe(18)
        async with self.tx() as tx:
            await tx.execute("INSERT OR IGNORE INTO accounts(id, created_at) VALUES (?, ?)",
                             (account_id, time.time()))
            await tx.execute("INSERT INTO tokens VALUES (?, ?, ?, ?)",
                             (hash_token(token), account_id, uses, time.time() + ttl))
        return token

    async def consume_token(self, tx: aiosqlite.Connection, account_id: str,
                            token: str) -> None:
        async with tx.execute("SELECT * FROM tokens WHERE token_hash = ?",
                              (hash_token(token),)) as cur:
            row = await cur.fetchone()
        if row is None or row["account_id"] != account_id:
            raise TokenRejected(401, "unknown Account ID or token")
        if row["expires_at"] < time.time():
            raise TokenRejected(401, "the enrollment token has expired")
        if row["uses_left"] <= 0:
            raise TokenRejected(403, "the enrollment token was already used")
        await tx.execute("UPDATE tokens SET uses_left = uses_left - 1 WHERE token_hash = ?",
                         (row["token_hash"],))

    async def save_gateway_cert(self, tx: aiosqlite.Connection, gateway_id: str,
                                account_id: str | None, serial: int,
                                not_after: float) -> None:
        if account_id is None:
            await tx.execute("UPDATE gateways SET cert_serial = ?, cert_not_after = ?"
                             " WHERE id = ?", (str(serial), not_after, gateway_id))
            return
        async with tx.execute("SELECT account_id FROM gateways WHERE id = ?",
                              (gateway_id,)) as cur:
            row = await cur.fetchone()
        if row is not None and row["account_id"] != account_id:
            raise TokenRejected(409, "this gateway id is enrolled in another account")
        await tx.execute(
            "INSERT INTO gateways(id, account_id, enrolled_at, cert_serial, cert_not_after)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET"
            " cert_serial = excluded.cert_serial, cert_not_after = excluded.cert_not_after,"
            " enrolled_at = excluded.enrolled_at, revoked = 0",
            (gateway_id, account_id, time.time(), str(serial), not_after))

    async def gateway(self, gateway_id: str) -> sqlite3.Row | None:
        return await self.fetchone("SELECT * FROM gateways WHERE id = ?", (gateway_id,))

    async def set_revoked(self, gateway_id: str, revoked: bool) -> bool:
        async with self.tx() as tx:
            cur = await tx.execute("UPDATE gateways SET revoked = ? WHERE id = ?",
                                   (int(revoked), gateway_id))
            return cur.rowcount > 0

    # -- sessions -------------------------------------------------------------------------------

    async def gateway_online(self, gateway_id: str, version: str,
                             capabilities: list[str], epoch: str) -> int:
        """Mark online after hello; returns the last seq stored for this outbox epoch.

        A new epoch means the gateway's outbox was recreated (factory reset, restored
        state): its seqs start over, so the de-duplication watermark does too.
        """
        async with self.tx() as tx:
            async with tx.execute("SELECT last_seq, epoch FROM gateways WHERE id = ?",
                                  (gateway_id,)) as cur:
                row = await cur.fetchone()
            last = int(row["last_seq"]) if row else 0
            if row is not None and row["epoch"] != epoch:
                _LOGGER.info("Gateway %s: new outbox epoch %s; seqs restart", gateway_id,
                             epoch)
                last = 0
            await tx.execute("UPDATE gateways SET online = 1, last_seen = ?, version = ?,"
                             " capabilities = ?, epoch = ?, last_seq = ? WHERE id = ?",
                             (time.time(), version, json.dumps(capabilities), epoch, last,
                              gateway_id))
        return last

    async def gateway_offline(self, gateway_id: str) -> None:
        if self._conn is None:  # a handler finishing after shutdown closed the store
            return
        async with self.tx() as tx:
            await tx.execute("UPDATE gateways SET online = 0, last_seen = ? WHERE id = ?",
                             (time.time(), gateway_id))

    # -- records ----------------------------------------------------------------------------------

    async def apply_push(self, gateway_id: str, records: list[Any]) -> int:
        """Store new records (skipping seen seqs) in one transaction; returns acked seq."""
        async with self.tx() as tx:
            async with tx.execute("SELECT last_seq, epoch FROM gateways WHERE id = ?",
                                  (gateway_id,)) as cur:
                row = await cur.fetchone()
            last = int(row["last_seq"]) if row else 0
            epoch = str(row["epoch"]) if row else ""
            previous = 0
            for record in records:
                seq, kind, payload, created = _record_fields(record)
                if seq <= previous:
                    raise PushRejected("records must be in ascending seq order")
                previous = seq
                if seq <= last:
                    self.duplicates_skipped += 1
                    continue
                await self._store_record(tx, (gateway_id, epoch, seq), kind, payload,
                                         created=created)
                last = seq
            await tx.execute("UPDATE gateways SET last_seq = ?, last_seen = ? WHERE id = ?",
                             (last, time.time(), gateway_id))
        return last

    async def _store_record(self, tx: aiosqlite.Connection, key: tuple[str, str, int],
                            kind: str, payload: dict[str, Any], *, created: float) -> None:
        gateway_id, _, seq = key
        now = time.time()
        text = json.dumps(payload)
        if kind in STATUS_KINDS:
            await tx.execute("UPDATE gateways SET status = ? WHERE id = ?", (text, gateway_id))
        else:
            await tx.execute("INSERT INTO records VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (*key, kind, text, created, now))
        if kind == "user.change":
            try:
                await _apply_user_change(tx, gateway_id, payload, now)
            except PushRejected as err:
                # Kept in ``records`` for inspection; rejecting the batch would wedge
                # the gateway's queue behind one bad record.
                _LOGGER.warning("Gateway %s record %d: %s", gateway_id, seq, err)
        elif kind == "inventory":
            await tx.execute("INSERT INTO inventory VALUES (?, ?, ?) ON CONFLICT(gateway_id)"
                             " DO UPDATE SET payload = excluded.payload,"
                             " updated_at = excluded.updated_at", (gateway_id, text, now))
        elif kind == "sync.result":
            await tx.execute("UPDATE gateways SET sync_result = ? WHERE id = ?",
                             (text, gateway_id))

    # -- commands ----------------------------------------------------------------------

    async def command_sent(self, gateway_id: str, method: str, params: dict[str, Any],
                           key: str) -> int:
        async with self.tx() as tx:
            cur = await tx.execute(
                "INSERT INTO commands(gateway_id, method, params, idempotency_key, sent_at)"
                " VALUES (?, ?, ?, ?, ?)", (gateway_id, method, json.dumps(params), key,
                                            time.time()))
            assert cur.lastrowid is not None
            return cur.lastrowid

    async def command_done(self, command_id: int, outcome: dict[str, Any]) -> None:
        async with self.tx() as tx:
            await tx.execute("UPDATE commands SET outcome = ?, finished_at = ? WHERE id = ?",
                             (json.dumps(outcome), time.time(), command_id))


def _record_fields(record: Any) -> tuple[int, str, dict[str, Any], float]:
    if not isinstance(record, dict):
        raise PushRejected("each record must be an object")
    seq, kind = record.get("seq"), record.get("kind")
    payload, created = record.get("payload"), record.get("created_at")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq <= 0:
        raise PushRejected("record seq must be a positive integer")
    if not isinstance(kind, str) or not kind or not isinstance(payload, dict):
        raise PushRejected(f"record {seq} needs a kind string and a payload object")
    if not isinstance(created, int | float) or isinstance(created, bool):
        raise PushRejected(f"record {seq} needs a numeric created_at")
    return seq, kind, payload, float(created)


async def _apply_user_change(tx: aiosqlite.Connection, gateway_id: str,
                             payload: dict[str, Any], now: float) -> None:
    op, source_id = payload.get("op"), payload.get("source_id")
    source_key = payload.get("source_key")
    if not isinstance(source_id, str) or not isinstance(source_key, str):
        raise PushRejected("user.change needs source_id and source_key strings")
    key = (gateway_id, source_id, source_key)
    if op == "delete":
        await tx.execute("DELETE FROM users WHERE gateway_id = ? AND source_id = ?"
                         " AND source_key = ?", key)
        return
    user = payload.get("user")
    if op not in ("create", "update") or not isinstance(user, dict):
        raise PushRejected("user.change op must be create/update (with user) or delete")
    await tx.execute(
        "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(gateway_id, source_id,"
        " source_key) DO UPDATE SET fingerprint = excluded.fingerprint,"
        " user = excluded.user, updated_at = excluded.updated_at",
        (*key, str(payload.get("fingerprint", "")), json.dumps(user), now))
