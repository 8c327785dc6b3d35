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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from clgwd.errors import ClgwdError
from clgwd.store.db import Database, Transaction

ACKED_RETENTION_SECONDS: Final = 7 * 24 * 3600
NEAR_FULL_RATIO: Final = 0.8
MAX_RECORD_BYTES: Final = 256 * 1024
"""Largest payload (serialized JSON) a record may have: every record must fit in one
``event.push`` message (1 MiB by default) with room to spare, or it could never be
delivered and would block everything queued after it."""


def _dumps(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


class RecordTooLarge(ClgwdError):
    """A payload above ``MAX_RECORD_BYTES``; refused so it cannot wedge delivery."""

    code = "outbox_record_too_large"
    http_status = 500


def _checked(kind: str, payload: str) -> str:
    if len(payload) > MAX_RECORD_BYTES:  # characters <= bytes; the check is a lower bound
        raise RecordTooLarge(f"{kind} record of {len(payload)} characters is above the "
                             f"{MAX_RECORD_BYTES}-byte limit of one outbox record")
    if len(payload) * 4 > MAX_RECORD_BYTES and len(payload.encode()) > MAX_RECORD_BYTES:
        raise RecordTooLarge(f"{kind} record is above the {MAX_RECORD_BYTES}-byte limit "
                             "of one outbox record")
    return payload


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
    """Queue of upstream records stored in the ``outbox`` table.

    The number of undelivered records is cached (the daemon is the only writer) and
    counted exactly only when the cache says the limit is near, so enqueueing stays
    O(1) however deep the queue is.
    """

    def __init__(self, db: Database, max_records: int) -> None:
        self._db = db
        self.max_records = max_records
        self._changed = asyncio.Event()
        self._depth: int | None = None

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
        if coalesce_key is not None:
            cursor = await tx.execute(
                "DELETE FROM outbox WHERE coalesce_key = ? AND acked_at IS NULL", (coalesce_key,)
            )
            self._adjust_after_commit(tx, -cursor.rowcount)
        await self._check_room(tx, 1)
        row = await tx.fetchone(
            "INSERT INTO outbox(kind, idempotency_key, coalesce_key, payload, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(idempotency_key) DO NOTHING RETURNING seq",
            (kind, key, coalesce_key, _checked(kind, _dumps(payload)), time.time()),
        )
        if row is None:
            existing = await tx.fetchone("SELECT seq FROM outbox WHERE idempotency_key = ?",
                                         (key,))
            assert existing is not None
            return int(existing["seq"])
        self._adjust_after_commit(tx, 1)
        return int(row["seq"])

    async def enqueue_many(
        self, tx: Transaction, kind: str, records: Sequence[tuple[str, dict[str, Any] | str]]
    ) -> None:
        """Queue many ``(idempotency_key, payload)`` records in ``tx`` in one statement.

        For bulk producers (a sync run): keys already queued are skipped, as in
        ``enqueue``; seqs follow the order of ``records``. A ``str`` payload is taken
        as already serialized JSON: the user sync builds payloads on its own worker
        thread, and serializing 50,000 of them here would run on the event loop.
        """
        if not records:
            return
        await self._check_room(tx, len(records))
        now = time.time()
        before = tx.total_changes
        await tx.executemany(
            "INSERT INTO outbox(kind, idempotency_key, payload, created_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT(idempotency_key) DO NOTHING",
            [(kind, key, _checked(kind, payload if isinstance(payload, str)
                                  else _dumps(payload)), now)
             for key, payload in records],
        )
        self._adjust_after_commit(tx, tx.total_changes - before)

    async def _check_room(self, tx: Transaction, adding: int) -> None:
        if self._depth is None or self._depth + adding > self.max_records * NEAR_FULL_RATIO:
            row = await tx.fetchone("SELECT count(*) FROM outbox WHERE acked_at IS NULL")
            self._depth = int(row[0]) if row else 0
        if self._depth + adding > self.max_records:
            raise OutboxFullError(
                f"outbox holds {self._depth} undelivered records (limit {self.max_records}); "
                "the cloud has not acknowledged them"
            )

    def _adjust_after_commit(self, tx: Transaction, delta: int) -> None:
        def apply() -> None:
            if self._depth is not None:
                self._depth += delta
            if delta > 0:
                self._changed.set()

        if delta:
            tx.after_commit(apply)

    async def pending(self, after_seq: int = 0, limit: int = 500,
                      max_bytes: int | None = None) -> list[OutboxRecord]:
        """Undelivered records with seq > ``after_seq``, oldest first: at most ``limit``
        records and, when ``max_bytes`` is given, at most that many payload bytes (but
        always at least one record, which ``MAX_RECORD_BYTES`` keeps deliverable)."""
        rows = await self._db.fetchall(
            "SELECT seq, kind, idempotency_key, payload, created_at,"
            " length(CAST(payload AS BLOB)) AS size FROM outbox"  # UTF-8 bytes, no copy here
            " WHERE acked_at IS NULL AND seq > ? ORDER BY seq LIMIT ?",
            (after_seq, limit),
        )
        records: list[OutboxRecord] = []
        total = 0
        for row in rows:
            total += row["size"]
            if records and max_bytes is not None and total > max_bytes:
                break
            records.append(OutboxRecord(row["seq"], row["kind"], row["idempotency_key"],
                                        json.loads(row["payload"]), row["created_at"]))
        return records

    async def ack(self, upto_seq: int) -> int:
        """Mark every record with seq <= ``upto_seq`` delivered; returns how many."""
        now = time.time()
        async with self._db.transaction() as tx:
            cursor = await tx.execute(
                "UPDATE outbox SET acked_at = ? WHERE acked_at IS NULL AND seq <= ?",
                (now, upto_seq),
            )
            self._adjust_after_commit(tx, -cursor.rowcount)
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
        """Number of undelivered records (exact; refreshes the cache)."""
        row = await self._db.fetchone("SELECT count(*) FROM outbox WHERE acked_at IS NULL")
        self._depth = int(row[0]) if row else 0
        return self._depth

    async def is_near_full(self) -> bool:
        return await self.depth() >= self.max_records * NEAR_FULL_RATIO

    async def wait_for_records(self) -> None:
        """Wait until a record is committed after the previous call returned.

        Bound the wait with ``asyncio.timeout`` where a periodic re-check is wanted.
        """
        await self._changed.wait()
        self._changed.clear()
