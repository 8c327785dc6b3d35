"""Exactly-once outcomes for mutating cloud commands, keyed by the cloud's idempotency key.

The cloud retries a command whose reply it did not see (the link dropped mid-command).
The first outcome, success or expected error, is stored in ``link_idempotency`` in the
state database and returned for every repeat, across reconnects and restarts. A repeat
that arrives while the first run is still going waits for it instead of running twice.
Unexpected internal errors are not stored, so a retry can succeed after a fix.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

from clgwd.protocol import rpc as p
from clgwd.protocol.rpc import RpcFailed
from clgwd.store import Database

RETENTION_SECONDS: Final = 7 * 24 * 3600


class IdempotencyStore:
    """Persisted outcomes plus the set of keys currently running."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._running: dict[str, asyncio.Future[dict[str, Any]]] = {}

    async def run(self, key: str, method: str,
                  call: Callable[[], Awaitable[Any]]) -> Any:
        """Return the stored outcome of ``key`` or run ``call`` once and store it."""
        outcome = await self._stored(key)
        if outcome is None and key in self._running:
            outcome = await asyncio.shield(self._running[key])
        if outcome is None:
            outcome = await self._run_first(key, method, call)
        elif outcome["method"] != method:
            raise RpcFailed(p.RpcError(
                p.IDEMPOTENCY_CONFLICT,
                f"idempotency key was first used for {outcome['method']}",
                {"code": "idempotency_conflict"}))
        return _unwrap(outcome)

    async def _run_first(self, key: str, method: str,
                         call: Callable[[], Awaitable[Any]]) -> dict[str, Any]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            try:
                outcome: dict[str, Any] = {"method": method, "result": await call()}
            except RpcFailed as err:
                outcome = {"method": method, "error": err.error.as_json()}
            await self._store(key, method, outcome)
            future.set_result(outcome)
            return outcome
        except asyncio.CancelledError:
            future.cancel()
            raise
        except BaseException as err:
            future.set_exception(err)
            future.exception()  # mark retrieved: waiters get it via shield/await
            raise
        finally:
            del self._running[key]

    async def _stored(self, key: str) -> dict[str, Any] | None:
        row = await self._db.fetchone(
            "SELECT outcome FROM link_idempotency WHERE key = ?", (key,))
        return None if row is None else dict(json.loads(row["outcome"]))

    async def _store(self, key: str, method: str, outcome: dict[str, Any]) -> None:
        now = time.time()
        async with self._db.transaction() as tx:
            await tx.execute(
                "INSERT OR IGNORE INTO link_idempotency(key, method, outcome, created_at)"
                " VALUES (?, ?, ?, ?)", (key, method, json.dumps(outcome), now))
            await tx.execute("DELETE FROM link_idempotency WHERE created_at < ?",
                             (now - RETENTION_SECONDS,))


def _unwrap(outcome: dict[str, Any]) -> Any:
    if "error" in outcome:
        err = outcome["error"]
        raise RpcFailed(p.RpcError(err["code"], err["message"], err.get("data")))
    return outcome["result"]
