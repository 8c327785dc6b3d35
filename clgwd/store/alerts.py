"""Alerts raised and cleared by their owning component, stored and sent upstream."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum

from clgwd.store.db import Database, Transaction
from clgwd.store.outbox import Outbox


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class Alert:
    code: str
    severity: Severity
    message: str
    since: float
    cleared_at: float | None = None

    @property
    def active(self) -> bool:
        return self.cleared_at is None


class Alerts:
    """Active and recently cleared alerts; each transition is queued upstream."""

    def __init__(self, db: Database, outbox: Outbox) -> None:
        self._db = db
        self._outbox = outbox

    async def raise_alert(self, code: str, severity: Severity, message: str) -> bool:
        """Raise (or update) an alert; returns True when it was not already active."""
        async with self._db.transaction() as tx:
            return await self.raise_in(tx, code, severity, message)

    async def raise_in(self, tx: Transaction, code: str, severity: Severity,
                       message: str) -> bool:
        row = await tx.fetchone("SELECT message, severity, cleared_at FROM alerts"
                                " WHERE code = ?", (code,))
        is_new = row is None or row["cleared_at"] is not None
        if not is_new and row is not None and (row["message"], row["severity"]) == (
                message, severity.value):
            return False
        now = time.time()
        await tx.execute(
            "INSERT INTO alerts(code, severity, message, since, cleared_at)"
            " VALUES (?, ?, ?, ?, NULL) ON CONFLICT(code) DO UPDATE SET"
            " severity = excluded.severity, message = excluded.message,"
            " since = CASE WHEN alerts.cleared_at IS NULL THEN alerts.since"
            " ELSE excluded.since END, cleared_at = NULL",
            (code, severity.value, message, now),
        )
        await self._outbox.enqueue(tx, "alert", {"code": code, "severity": severity.value,
                                                 "message": message, "state": "raised",
                                                 "at": now})
        return is_new

    async def clear(self, code: str) -> bool:
        """Clear an active alert; returns False when it was not active."""
        async with self._db.transaction() as tx:
            return await self.clear_in(tx, code)

    async def clear_in(self, tx: Transaction, code: str) -> bool:
        """``clear`` inside the caller's transaction (with the change it belongs to)."""
        now = time.time()
        cursor = await tx.execute(
            "UPDATE alerts SET cleared_at = ? WHERE code = ? AND cleared_at IS NULL",
            (now, code))
        if cursor.rowcount == 0:
            return False
        await self._outbox.enqueue(tx, "alert", {"code": code, "state": "cleared",
                                                 "at": now})
        return True

    async def active(self) -> list[Alert]:
        rows = await self._db.fetchall(
            "SELECT * FROM alerts WHERE cleared_at IS NULL ORDER BY since")
        return [Alert(r["code"], Severity(r["severity"]), r["message"], r["since"])
                for r in rows]
