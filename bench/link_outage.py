"""Figure: a cloud outage with 10,000 events queued; after recovery all arrive once, in order.

One real gateway link (SQLite outbox) is online; the refcloud stops for OUTAGE seconds
(a time-compressed stand-in for 10 minutes: nothing in the link depends on wall-clock
outage length except the backoff, capped at 300 s in production). During the outage
the gateway queues EVENTS history events at a steady rate. The cloud comes back; the
script measures how long delivery takes and checks in the cloud's database that every
event arrived exactly once and in order. Optionally the cloud restarts again halfway
through the catch-up (``--restart-during-catchup``) to exercise resend-from-last-ack.

    .venv/bin/python bench/link_outage.py [events] [outage_seconds] [--restart-during-catchup]
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

from link_common import Node, fleet, quiet_logs, wait_online

from clgwd.refcloud.server import RefCloud


async def queue_events(node: Node, count: int, seconds: float) -> None:
    """Enqueue ``count`` events spread over ``seconds`` (batches of 100 per transaction)."""
    batch = 100
    pause = seconds / max(1, count // batch)
    for start in range(0, count, batch):
        async with node.store.db.transaction() as tx:
            for n in range(start, min(count, start + batch)):
                await node.store.outbox.enqueue(tx, "event", {"n": n + 1})
        await asyncio.sleep(pause)


async def main(events: int, outage: float, restart: bool) -> int:
    with tempfile.TemporaryDirectory(prefix="clgwd-bench-") as tmp:
        base = Path(tmp)
        async with RefCloud(base / "cloud") as cloud, \
                fleet(base, cloud, 1, backoff_cap=5.0) as nodes:
            node = nodes[0]
            await wait_online(nodes, 30)
            await cloud.stop()
            print(f"cloud down; queueing {events} events over {outage:.0f} s")
            await queue_events(node, events, outage)
            print(f"outbox depth at recovery: {await node.store.outbox.depth()}")
            await cloud.start()
            up = time.monotonic()
            if restart:
                await _wait_depth(node, events // 2)
                await cloud.stop()
                await asyncio.sleep(1.0)
                await cloud.start()
                print("cloud restarted again halfway through the catch-up")
            await _wait_depth(node, 0)
            took = time.monotonic() - up
            return await _verify(cloud, events, took)


async def _wait_depth(node: Node, at_most: int) -> None:
    while await node.store.outbox.depth() > at_most:  # noqa: ASYNC110 - polls SQLite
        await asyncio.sleep(0.05)


async def _verify(cloud: RefCloud, events: int, took: float) -> int:
    rows = await cloud.store.fetchall(
        "SELECT seq, payload FROM records WHERE kind = 'event' ORDER BY seq")
    numbers = [json.loads(r["payload"])["n"] for r in rows]
    in_order = numbers == list(range(1, events + 1))
    print(f"delivered {len(numbers)}/{events} events in {took:.2f} s after recovery "
          f"({len(numbers) / took:.0f} records/s)")
    print(f"in seq order and each exactly once: {in_order}; "
          f"duplicates received and skipped by (gateway, seq): "
          f"{cloud.store.duplicates_skipped}")
    print(f"RESULT {'PASS' if in_order else 'FAIL'}")
    return 0 if in_order else 1


if __name__ == "__main__":
    quiet_logs()
    flags = [a for a in sys.argv[1:] if a.startswith("--")]
    args = [float(a) for a in sys.argv[1:] if not a.startswith("--")]
    sys.exit(asyncio.run(main(int(args[0]) if args else 10_000,
                              args[1] if len(args) > 1 else 10.0,
                              "--restart-during-catchup" in flags)))
