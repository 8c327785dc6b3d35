"""Small persistent settings (JSON values) such as the gateway id or chosen host name."""

from __future__ import annotations

import json
from typing import Any

from clgwd.store.db import Database, Transaction


class Settings:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, key: str, default: Any = None) -> Any:
        row = await self._db.fetchone("SELECT value FROM settings WHERE key = ?", (key,))
        return default if row is None else json.loads(row["value"])

    async def set(self, key: str, value: Any) -> None:
        async with self._db.transaction() as tx:
            await self.set_in(tx, key, value)

    @staticmethod
    async def set_in(tx: Transaction, key: str, value: Any) -> None:
        await tx.execute(
            "INSERT INTO settings(key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value)))

    @staticmethod
    async def delete_in(tx: Transaction, key: str) -> None:
        await tx.execute("DELETE FROM settings WHERE key = ?", (key,))
