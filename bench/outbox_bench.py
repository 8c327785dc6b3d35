"""Outbox throughput against a raw-SQLite baseline measured in the same run.

    .venv/bin/python bench/outbox_bench.py [--records 20000] [--batch 100]

Baseline: plain sqlite3 INSERTs of the same payloads in the same batches, WAL +
synchronous=FULL, on the event loop's thread (no aiosqlite, no outbox logic).
Measured: ``EventHistory.record`` (event row + outbox row in one BEGIN IMMEDIATE
transaction), delivery (``pending`` + ``ack`` in batches of 500), and the bulk path
``Outbox.enqueue_many`` that a sync run uses.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
from pathlib import Path

from clgwd.config import parse_config
from clgwd.store import Action, Event, Store


def baseline(path: Path, records: int, batch: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT)")
    start = time.perf_counter()
    for first in range(0, records, batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO t(payload) VALUES (?)",
                         [(json.dumps({"n": n, "asset": "PBX User Profile"}),)
                          for n in range(first, min(first + batch, records))])
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return elapsed


async def outbox(state_dir: Path, records: int, batch: int) -> tuple[float, float, float]:
    config = parse_config(f"state: {{dir: {state_dir}, outbox_max_records: {records + 1}}}")
    async with Store(config) as store:
        start = time.perf_counter()
        for first in range(0, records, batch):
            async with store.db.transaction() as tx:
                for n in range(first, min(first + batch, records)):
                    await store.history.record(tx, Event(
                        actor="bench", action=Action.CREATE, asset="PBX User Profile",
                        core={"n": n}))
        write = time.perf_counter() - start
        start = time.perf_counter()
        delivered = 0
        while batch_records := await store.outbox.pending(limit=500):
            delivered += len(batch_records)
            await store.outbox.ack(batch_records[-1].seq)
        deliver = time.perf_counter() - start
        assert delivered == records
        start = time.perf_counter()
        for first in range(0, records, batch):
            async with store.db.transaction() as tx:
                await store.outbox.enqueue_many(tx, "user.change", [
                    (f"bulk:{n}", {"n": n, "asset": "PBX User Profile"})
                    for n in range(first, min(first + batch, records))])
        bulk = time.perf_counter() - start
    return write, deliver, bulk


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = baseline(Path(tmp) / "baseline.db", args.records, args.batch)
        write, deliver, bulk = asyncio.run(outbox(Path(tmp) / "state", args.records, args.batch))
    n = args.records
    print(f"records={n} batch={args.batch}")
    print(f"baseline raw sqlite insert : {n / base:10.0f} rec/s")
    print(f"outbox record (event+outbox): {n / write:10.0f} rec/s  "
          f"({write / base:.1f}x the baseline's time; two rows per record)")
    print(f"outbox bulk enqueue_many    : {n / bulk:10.0f} rec/s  "
          f"({bulk / base:.1f}x the baseline's time)")
    print(f"outbox delivery (pending+ack): {n / deliver:9.0f} rec/s")


if __name__ == "__main__":
    main()
