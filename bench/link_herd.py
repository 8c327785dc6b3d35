"""Figure: 200 gateways against a restarting refcloud — no thundering herd.

All links lose the cloud at the same instant (it stops, closing every socket). The
script counts every connection attempt the gateways make, per second since the stop,
until every gateway is online again, and prints the histogram. Full jitter should
spread attempts over the backoff window: the busiest second should carry a small
fraction of the fleet, not all of it (a synchronised fleet would show N attempts in
one second, repeatedly).

    .venv/bin/python bench/link_herd.py [gateways] [down_seconds]
"""

from __future__ import annotations

import asyncio
import collections
import sys
import tempfile
import time
from pathlib import Path

from link_common import fleet, quantiles, quiet_logs, wait_online

from clgwd.refcloud.server import RefCloud


async def main(count: int, down: float) -> None:
    with tempfile.TemporaryDirectory(prefix="clgwd-bench-") as tmp:
        base = Path(tmp)
        async with RefCloud(base / "cloud") as cloud, fleet(base, cloud, count) as nodes:
            first = await wait_online(nodes, 120)
            print(f"{len(first)}/{count} gateways online; cloud down for {down:.0f} s")
            for node in nodes:
                node.attempts.clear()
            stopped = time.monotonic()
            await cloud.stop()
            await asyncio.sleep(down)
            await cloud.start()
            seen = await wait_online(nodes, 300)
            back = [t - stopped for t in seen.values()]
            _report(nodes, stopped, down, count, back)


def _report(nodes: list, stopped: float, down: float, count: int, back: list[float]) -> None:
    per_second: collections.Counter[int] = collections.Counter()
    for node in nodes:
        for t in node.attempts:
            per_second[int(t - stopped)] += 1
    last = max(per_second) if per_second else 0
    print("attempts per second since the cloud stopped ('|' marks the cloud back up):")
    for second in range(last + 1):
        mark = "|" if second == int(down) else " "
        n = per_second.get(second, 0)
        print(f"  {second:4d}s {mark} {n:4d} {'#' * (n * 60 // max(count, 1))}")
    total = sum(per_second.values())
    peak = max(per_second.values(), default=0)
    print(f"total attempts {total}, peak {peak}/s = {peak / count:.0%} of the fleet "
          f"(synchronised retries would put {count} = 100% in one second)")
    print(f"back online (since stop): {quantiles(back)}; {len(back)}/{count} online")


if __name__ == "__main__":
    quiet_logs()
    args = [float(a) for a in sys.argv[1:]]
    asyncio.run(main(int(args[0]) if args else 200, args[1] if len(args) > 1 else 10.0))
