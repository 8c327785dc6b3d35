"""The users a safety abort held back, and the technician's two ways out.

A run that would delete (or finds missing) too many users aborts and applies nothing
(``clgwd.sync.diff``). Without a way out every later run aborts the same way, so the
abort also stores *which* users it held back (``sync_missing``, one set per source,
named by ``set_id``). The technician then either

* keeps them: they stop counting as synced users (the next reads are the new
  baseline) and nothing is deleted in the cloud (``keep``); they stay listed as kept
  (``sync_snapshot.kept_at``, ``kept_count``/``kept_page``) until they come back to the
  PBX; or
* deletes them once: a fresh read must find exactly the same set missing, then the
  engine deletes exactly those users in one ordinary run (``SyncEngine.run`` with a
  ``DeleteConfirmation``), through the outbox and the history like any change.

Both are refused when the set on screen is no longer the one stored (``StaleSet``).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Final

from clgwd.errors import ClgwdError
from clgwd.store import Action, Event, Store, Transaction
from clgwd.sync.diff import Plan, missing_set_id

ASSET: Final = "PBX users missing"
ALERT_SAFETY: Final = "sync.safety_abort"
PAGE_MAX: Final = 200
_CHUNK: Final = 500


class NothingMissing(ClgwdError):
    """No safety abort is waiting for a decision."""

    code = "sync_nothing_missing"
    http_status = 409


class StaleSet(ClgwdError):
    """The set of missing users changed since it was shown."""

    code = "sync_missing_changed"
    http_status = 409


class WrongCount(ClgwdError):
    """The number typed to confirm is not the number of users to delete."""

    code = "sync_confirm_mismatch"
    http_status = 422


@dataclass(frozen=True)
class DeleteConfirmation:
    """"Delete them once": the set shown (``set_id``) and the number typed."""

    set_id: str
    count: int


@dataclass(frozen=True)
class PendingSet:
    source_id: str
    set_id: str
    count: int
    active: int
    reason: str
    found_at: float
    run_id: str

    def as_json(self) -> dict[str, Any]:
        return {"set_id": self.set_id, "count": self.count, "active": self.active,
                "reason": self.reason, "found_at": self.found_at, "run_id": self.run_id}


async def store_abort(tx: Transaction, source_id: str, plan: Plan, reason: str,
                      run_id: str) -> PendingSet:
    """Replace the source's held-back set with this abort's (same transaction as the
    run log and the alert)."""
    pending = PendingSet(source_id, missing_set_id(source_id, plan.missing_keys),
                         len(plan.missing_keys), plan.active_before, reason, time.time(),
                         run_id)
    await clear(tx, source_id)
    await tx.execute(
        "INSERT INTO sync_missing_set(source_id, set_id, count, active, reason, found_at,"
        " run_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (source_id, pending.set_id, pending.count, pending.active, reason,
         pending.found_at, run_id))
    await tx.executemany("INSERT INTO sync_missing(source_id, source_key) VALUES (?, ?)",
                         [(source_id, key) for key in plan.missing_keys])
    return pending


async def clear(tx: Transaction, source_id: str) -> None:
    await tx.execute("DELETE FROM sync_missing WHERE source_id = ?", (source_id,))
    await tx.execute("DELETE FROM sync_missing_set WHERE source_id = ?", (source_id,))


async def pending(store: Store, source_id: str) -> PendingSet | None:
    row = await store.db.fetchone(
        "SELECT set_id, count, active, reason, found_at, run_id FROM sync_missing_set"
        " WHERE source_id = ?", (source_id,))
    if row is None:
        return None
    return PendingSet(source_id, row[0], int(row[1]), int(row[2]), row[3], float(row[4]),
                      row[5])


async def page(store: Store, source_id: str, offset: int, limit: int
               ) -> list[dict[str, str]]:
    """One page of the held-back users (key order), as the page lists them."""
    rows = await store.db.fetchall(
        "SELECT m.source_key, json_extract(s.user, '$.extension'),"
        " json_extract(s.user, '$.display_name'), json_extract(s.user, '$.first_name'),"
        " json_extract(s.user, '$.last_name'), json_extract(s.user, '$.email')"
        " FROM sync_missing AS m LEFT JOIN sync_snapshot AS s"
        " ON s.source_id = m.source_id AND s.source_key = m.source_key"
        " WHERE m.source_id = ? ORDER BY m.source_key LIMIT ? OFFSET ?",
        (source_id, limit, offset))
    out = []
    for key, ext, display, first, last, email in rows:
        name = display or " ".join(p for p in (first, last) if p)
        out.append({"source_key": key, "extension": ext or "", "name": name or "",
                    "email": email or ""})
    return out


async def kept_count(store: Store) -> int:
    """Users kept in the cloud that are no longer on the PBX, over every source."""
    row = await store.db.fetchone(
        "SELECT COUNT(*) FROM sync_snapshot WHERE deleted = 1 AND kept_at IS NOT NULL")
    return int(row[0]) if row else 0


async def kept_page(store: Store, offset: int, limit: int) -> list[dict[str, Any]]:
    """One page of the kept users (by source, then key), as the Overview lists them."""
    rows = await store.db.fetchall(
        "SELECT source_id, source_key, kept_at, json_extract(user, '$.extension'),"
        " json_extract(user, '$.display_name'), json_extract(user, '$.first_name'),"
        " json_extract(user, '$.last_name'), json_extract(user, '$.email')"
        " FROM sync_snapshot WHERE deleted = 1 AND kept_at IS NOT NULL"
        " ORDER BY source_id, source_key LIMIT ? OFFSET ?", (limit, offset))
    out = []
    for source_id, key, kept_at, ext, display, first, last, email in rows:
        name = display or " ".join(p for p in (first, last) if p)
        out.append({"source_id": source_id, "source_key": key, "kept_at": kept_at,
                    "extension": ext or "", "name": name or "", "email": email or ""})
    return out


def check(held: PendingSet | None, set_id: str | None) -> PendingSet:
    """The stored set, if ``set_id`` (when given) still names it."""
    if held is None:
        raise NothingMissing("no sync is waiting for a decision about missing users; "
                             "the last sync was not stopped by the safety rule")
    if set_id is not None and set_id != held.set_id:
        raise StaleSet(f"the missing users changed since they were shown (now {held.count}"
                       " users); reload the list and decide again")
    return held


async def keep(store: Store, held: PendingSet, actor: str) -> int:
    """"Keep these users": they stop counting (no longer synced, never deleted in the
    cloud); one history event names who decided and how many."""
    keys = [r[0] for r in await store.db.fetchall(
        "SELECT source_key FROM sync_missing WHERE source_id = ?", (held.source_id,))]
    now = time.time()
    async with store.db.transaction() as tx:
        for i in range(0, len(keys), _CHUNK):
            chunk = keys[i:i + _CHUNK]
            marks = ",".join("?" * len(chunk))
            await tx.execute(
                "UPDATE sync_snapshot SET deleted = 1, absent_reads = 0, kept_at = ?,"  # noqa: S608
                f" updated_at = ? WHERE source_id = ? AND deleted = 0 AND source_key IN ({marks})",
                (now, now, held.source_id, *chunk))
        await clear(tx, held.source_id)
        await store.alerts.clear_in(tx, ALERT_SAFETY)
        await store.history.record(tx, Event(
            actor=actor, action=Action.OTHER, asset=ASSET,
            subject=f"{len(keys)} users kept in the cloud (not deleted)",
            properties_changed=["baseline"],
            core={"decision": "keep", "count": len(keys), "set_id": held.set_id,
                  "source_keys": keys[:PAGE_MAX]},
            extra={"source_id": held.source_id}))
    return len(keys)


def confirmation_event(actor: str, source_id: str, held_set: str, keys: list[str]) -> Event:
    """The audit entry of "Delete them once" (each deleted user also gets its own)."""
    return Event(actor=actor, action=Action.DELETE, asset=ASSET,
                 subject=f"{len(keys)} users deleted once, as confirmed",
                 properties_changed=["deleted"],
                 core={"decision": "delete", "count": len(keys), "set_id": held_set,
                       "source_keys": keys[:PAGE_MAX]},
                 extra={"source_id": source_id})
