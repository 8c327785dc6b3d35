"""The persistent outbox: the only path for records that must reach the cloud.

Producers call ``Outbox.enqueue(tx, ...)`` inside the same transaction as the state
change the record reports, so a crash either keeps both or neither. The cloud link
reads ``pending()`` in seq order and calls ``ack()`` when the cloud confirms; anything
not acked is sent again after a reconnect or restart (at-least-once; the cloud
de-duplicates by seq). A producer that repeats an idempotency key gets the first
record's seq back instead of a second record.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from clgwd.errors import ClgwdError
from clgwd.store.db import Database, Transaction

ACKED_RETENTION_SECONDS: Final = 7 * 24 * 3600
NEAR_FULL_RATIO: Final = 0.8


class OutboxFullError(ClgwdError):
    """The outbox holds its maximum of undelivered records; the change is refused."""

    code = "outbox_full"
    http_status = 503


@dataclass(frozen=True)
class OutboxRecord:
    """One queued upstream record."""

    seq: int
    kind: str
    idempotency_key: str
    payload: dict[str, Any]
    created_at: float


class Outbox:
    """Queue of upstream records stored in the ``outbox`` table."""

    def __init__(self, db: Database, max_records: int) -> None:
        self._db = db
        self.max_records = max_records
        self._changed = asyncio.Event()
        self._batch_depth: weakref.WeakKeyDictionary[Transaction, int] = (
            weakref.WeakKeyDictionary())
        """Undelivered records per open transaction, for ``enqueue_many``."""

    async def enqueue(
        self,
        tx: Transaction,
        kind: str,
        payload: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        coalesce_key: str | None = None,
    ) -> int:
        """Queue a record in ``tx``; returns its seq.

        ``coalesce_key`` marks records where only the newest matters (status, metrics):
        an undelivered older record with the same key is replaced. Events and audit
        records must not pass one.
        """
        key = idempotency_key or uuid.uuid4().hex
        self._batch_depth.pop(tx, None)  # enqueue_many recounts after a single insert
        existing = await tx.fetchone("SELECT seq FROM outbox WHERE idempotency_key = ?", (key,))
        if existing is not None:
            return int(existing["seq"])
        if coalesce_key is not None:
            await tx.execute(
                "DELETE FROM outbox WHERE coalesce_key = ? AND acked_at IS NULL", (coalesce_key,)
            )
        depth_row = await tx.fetchone("SELECT count(*) FROM outbox WHERE acked_at IS NULL")
        depth = int(depth_row[0]) if depth_row else 0
        if depth >= self.max_records:
            raise OutboxFullError(
                f"outbox holds {depth} undelivered records (limit {self.max_records}); "
                "the cloud has not acknowledged them"
            )
        cursor = await tx.execute(
            "INSERT INTO outbox(kind, idempotency_key, coalesce_key, payload, created_at)"
            " VALUES (?, ?, ?, ?, ?)",
            (kind, key, coalesce_key, json.dumps(payload, separators=(",", ":")), time.time()),
        )
        tx.after_commit(self._changed.set)
        seq = cursor.lastrowid
        assert seq is not None
        return seq

    async def enqueue_many(
        self, tx: Transaction, records: Sequence[tuple[str, dict[str, Any] | str, str]]
    ) -> int:
        """Queue ``(kind, payload, idempotency_key)`` records in ``tx`` with one statement.

        For producers that queue thousands of records per transaction (a first user
        sync): ``enqueue`` costs three statements per record. Same guarantees: a key
        already queued is skipped, the depth limit refuses the whole batch. A ``str``
        payload is taken as already serialized JSON (the producer had it anyway).
        Returns the number of records actually added.
        """
        if not records:
            return 0
        depth = self._batch_depth.get(tx)
        if depth is None:
            # Counted once per transaction: the write lock keeps other writers out until
            # it ends, so adding what this transaction queued keeps the count exact.
            depth_row = await tx.fetchone("SELECT count(*) FROM outbox WHERE acked_at IS NULL")
            depth = int(depth_row[0]) if depth_row else 0
        if depth + len(records) > self.max_records:
            raise OutboxFullError(
                f"outbox holds {depth} undelivered records; {len(records)} more would pass "
                f"the limit of {self.max_records}"
            )
        before = await tx.fetchone("SELECT total_changes()")
        now = time.time()
        await tx.executemany(
            "INSERT INTO outbox(kind, idempotency_key, coalesce_key, payload, created_at)"
            " VALUES (?, ?, NULL, ?, ?) ON CONFLICT(idempotency_key) DO NOTHING",
            ((kind, key, payload if isinstance(payload, str)
              else json.dumps(payload, separators=(",", ":")), now)
             for kind, payload, key in records),
        )
        after = await tx.fetchone("SELECT total_changes()")
        tx.after_commit(self._changed.set)
        added = int(after[0]) - int(before[0]) if after and before else 0
        self._batch_depth[tx] = depth + added
        return added

    async def pending(self, after_seq: int = 0, limit: int = 500) -> list[OutboxRecord]:
        """Undelivered records with seq > ``after_seq``, oldest first."""
        rows = await self._db.fetchall(
            "SELECT seq, kind, idempotency_key, payload, created_at FROM outbox"
            " WHERE acked_at IS NULL AND seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        )
        return [
            OutboxRecord(row["seq"], row["kind"], row["idempotency_key"],
                         json.loads(row["payload"]), row["created_at"])
            for row in rows
        ]

    async def ack(self, upto_seq: int) -> int:
        """Mark every record with seq <= ``upto_seq`` delivered; returns how many."""
        now = time.time()
        async with self._db.transaction() as tx:
            cursor = await tx.execute(
                "UPDATE outbox SET acked_at = ? WHERE acked_at IS NULL AND seq <= ?",
                (now, upto_seq),
            )
            await tx.execute(
                "DELETE FROM outbox WHERE acked_at IS NOT NULL AND acked_at < ?",
                (now - ACKED_RETENTION_SECONDS,),
            )
            await tx.execute(
                "INSERT INTO settings(key, value) VALUES ('outbox.acked_seq', ?)"
                " ON CONFLICT(key) DO UPDATE SET value = max(CAST(value AS INTEGER),"
                " CAST(excluded.value AS INTEGER))",
                (str(upto_seq),),
            )
            return cursor.rowcount

    async def acked_seq(self) -> int:
        """The highest seq the cloud has confirmed (0 before the first ack)."""
        row = await self._db.fetchone("SELECT value FROM settings WHERE key = 'outbox.acked_seq'")
        return int(row["value"]) if row else 0

    async def depth(self) -> int:
        """Number of undelivered records."""
        row = await self._db.fetchone("SELECT count(*) FROM outbox WHERE acked_at IS NULL")
        return int(row[0]) if row else 0

    async def is_near_full(self) -> bool:
        return await self.depth() >= self.max_records * NEAR_FULL_RATIO

    async def wait_for_records(self) -> None:
        """Wait until a record is committed after the previous call returned.

        Bound the wait with ``asyncio.timeout`` where a periodic re-check is wanted.
        """
        await self._changed.wait()
        self._changed.clear()
