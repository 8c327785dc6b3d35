"""The tunnel audit log: local, append-only, hash-chained, and queued upstream.

Every tunnel start/stop/expiry, stream open and close, and every denial is one record.
A record is committed (locally and in the outbox, in one transaction) *before* the
action it reports proceeds: a stream is only connected once its open record is
durable, so a full outbox or a broken disk refuses tunnels instead of hiding them
(fail closed).

Records written while a commit is in flight are batched into the next transaction
(the first waiter writes everyone's records), so a burst of stream opens costs one
fsync per batch, not per stream, without a background task.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import dataclass
from typing import Any, Final

from clgwd.errors import ClgwdError
from clgwd.store import Database, Outbox, Transaction

GENESIS_HASH: Final = "0" * 64
OUTBOX_KIND: Final = "audit"


class AuditFailed(ClgwdError):
    """The record could not be committed; the audited action must not proceed."""

    code = "audit_unavailable"
    http_status = 503


class AuditChainBroken(Exception):
    """Verification found a row whose hash does not match its content or predecessor."""


@dataclass(frozen=True)
class AuditRecord:
    seq: int
    at: float
    type: str
    record: dict[str, Any]
    prev_hash: str
    hash: str

    def as_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "type": self.type, "record": self.record,
                "prev_hash": self.prev_hash, "hash": self.hash}


def chain_hash(prev_hash: str, seq: int, at: float, rtype: str, record_json: str) -> str:
    """sha256 over the previous hash and this row's canonical content."""
    text = json.dumps([prev_hash, seq, at, rtype, record_json], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _canonical(record: dict[str, Any]) -> str:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)


class AuditLog:
    """Appends audit records to ``tunnel_audit`` and the outbox."""

    def __init__(self, db: Database, outbox: Outbox) -> None:
        self._db = db
        self._outbox = outbox
        self._pending: list[tuple[str, dict[str, Any], asyncio.Future[int]]] = []
        self._lock = asyncio.Lock()

    async def append(self, rtype: str, record: dict[str, Any]) -> int:
        """Commit one record (batched with concurrent ones); returns its seq."""
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((rtype, record, fut))
        async with self._lock:
            if not fut.done():
                batch, self._pending = self._pending, []
                await self._write_batch(batch)
        return fut.result()

    async def _write_batch(self, batch: list[tuple[str, dict[str, Any],
                                                   asyncio.Future[int]]]) -> None:
        try:
            async with self._db.transaction() as tx:
                seqs = [await self._insert(tx, rtype, record) for rtype, record, _ in batch]
        except BaseException as err:
            failure = AuditFailed(f"audit log write failed: {type(err).__name__}: {err}")
            for _, _, fut in batch:
                if not fut.done():
                    fut.set_exception(failure)
                    fut.exception()  # retrieved: a waiter may have been cancelled
            if isinstance(err, Exception):
                raise failure from err
            raise
        for (_, _, fut), seq in zip(batch, seqs, strict=True):
            fut.set_result(seq)

    async def _insert(self, tx: Transaction, rtype: str, record: dict[str, Any]) -> int:
        row = await tx.fetchone("SELECT seq, hash FROM tunnel_audit ORDER BY seq DESC LIMIT 1")
        seq = (row["seq"] + 1) if row else 1
        prev = row["hash"] if row else GENESIS_HASH
        at = time.time()
        body = _canonical(record)
        digest = chain_hash(prev, seq, at, rtype, body)
        await tx.execute(
            "INSERT INTO tunnel_audit(seq, at, type, record, prev_hash, hash)"
            " VALUES (?, ?, ?, ?, ?, ?)", (seq, at, rtype, body, prev, digest))
        entry = AuditRecord(seq, at, rtype, json.loads(body), prev, digest)
        await self._outbox.enqueue(tx, OUTBOX_KIND, {"log": "tunnel", **entry.as_json()},
                                   idempotency_key=f"tunnel-audit:{seq}:{digest[:16]}")
        return seq

    async def records(self, *, since_seq: int = 0, limit: int = 1000) -> list[AuditRecord]:
        rows = await self._db.fetchall(
            "SELECT seq, at, type, record, prev_hash, hash FROM tunnel_audit"
            " WHERE seq > ? ORDER BY seq LIMIT ?", (since_seq, limit))
        return [AuditRecord(r["seq"], r["at"], r["type"], json.loads(r["record"]),
                            r["prev_hash"], r["hash"]) for r in rows]

    async def verify(self) -> int:
        """Walk the whole chain; returns the number of rows or raises AuditChainBroken."""
        rows = await self._db.fetchall(
            "SELECT seq, at, type, record, prev_hash, hash FROM tunnel_audit ORDER BY seq")
        prev = GENESIS_HASH
        for row in rows:
            expected = chain_hash(prev, row["seq"], row["at"], row["type"], row["record"])
            if row["prev_hash"] != prev or row["hash"] != expected:
                raise AuditChainBroken(f"tunnel audit chain broken at seq {row['seq']}")
            prev = row["hash"]
        return len(rows)

    async def recent_ticket_ids(self, since: float) -> list[tuple[str, float]]:
        """(ticket id, expiry) of tickets recorded after ``since`` (replay-cache seed)."""
        rows = await self._db.fetchall(
            "SELECT record FROM tunnel_audit WHERE at >= ? AND record LIKE '%ticket_id%'",
            (since,))
        out = []
        for row in rows:
            record = json.loads(row["record"])
            jti, exp = record.get("ticket_id"), record.get("ticket_exp")
            if isinstance(jti, str) and isinstance(exp, int | float):
                out.append((jti, float(exp)))
        return out
