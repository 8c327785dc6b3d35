"""Subprocess for the crash tests: writes or delivers outbox records until killed.

``write STATE_DIR``: records history events (state change + outbox row in one
transaction) as fast as it can, printing each committed event id.
``deliver STATE_DIR CLOUD_DB``: delivers pending records to a stand-in cloud (its own
SQLite file that de-duplicates by seq, as the real cloud does), acking after each batch.
"""

from __future__ import annotations

import asyncio
import sqlite3
import sys
from pathlib import Path

from clgwd.config import parse_config
from clgwd.store import Action, Event, Store


def _store(state_dir: str) -> Store:
    return Store(parse_config(f"state: {{dir: {state_dir}}}"))


async def write(state_dir: str) -> None:
    async with _store(state_dir) as store:
        row = await store.db.fetchone("SELECT value FROM settings WHERE key = 'counter'")
        n = int(row["value"]) + 1 if row else 0
        while True:
            event = Event(actor="crash-test", action=Action.CREATE, asset="PBX User Profile",
                          subject=f"user {n}", core={"n": n})
            async with store.db.transaction() as tx:
                await store.history.record(tx, event)
                await tx.execute("INSERT INTO settings(key, value) VALUES ('counter', ?)"
                                 " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                                 (str(n),))
            print(event.id, flush=True)
            n += 1


def _cloud_receive(cloud_db: str, batch: list[tuple[int, str]]) -> None:
    with sqlite3.connect(cloud_db) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS received (seq INTEGER PRIMARY KEY, key TEXT)")
        conn.execute("CREATE TABLE IF NOT EXISTS deliveries (seq INTEGER)")
        conn.executemany("INSERT INTO deliveries(seq) VALUES (?)", [(s,) for s, _ in batch])
        conn.executemany("INSERT OR IGNORE INTO received(seq, key) VALUES (?, ?)", batch)


async def deliver(state_dir: str, cloud_db: str) -> None:
    async with _store(state_dir) as store:
        while True:
            batch = await store.outbox.pending(after_seq=0, limit=50)
            if not batch:
                print("drained", flush=True)
                await asyncio.sleep(3600)
            await asyncio.to_thread(_cloud_receive, cloud_db,
                                    [(r.seq, r.idempotency_key) for r in batch])
            await store.outbox.ack(batch[-1].seq)


def main() -> None:
    mode, state_dir = sys.argv[1], sys.argv[2]
    Path(state_dir).mkdir(parents=True, exist_ok=True)
    if mode == "write":
        asyncio.run(write(state_dir))
    else:
        asyncio.run(deliver(state_dir, sys.argv[3]))


if __name__ == "__main__":
    main()
