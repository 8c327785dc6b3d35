"""Figure: after a cloud restart, how fast are gateways back online? (target p50 <= 5 s)

N real gateway links (default backoff: base 1 s, cap 300 s, full jitter) are online;
the refcloud stops (closing every socket with 1012), stays down for DOWN seconds,
starts again on the same port. Reconnect time is measured from the moment the cloud
listens again to the moment each link reports ONLINE (hello answered). Several rounds;
``stable_after`` is lowered so each round starts from a reset backoff, as it would for
a cloud that restarts less often than once a minute.

    .venv/bin/python bench/link_reconnect.py [gateways] [rounds] [down_seconds]
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from link_common import fleet, quantiles, quiet_logs, wait_online

from clgwd.refcloud.server import RefCloud


async def main(count: int, rounds: int, down: float) -> None:
    with tempfile.TemporaryDirectory(prefix="clgwd-bench-") as tmp:
        base = Path(tmp)
        async with RefCloud(base / "cloud") as cloud, \
                fleet(base, cloud, count, stable_after=2.0) as nodes:
            first = await wait_online(nodes, 60)
            print(f"{len(first)}/{count} gateways online; restarting the cloud "
                  f"{rounds}x with {down:.1f} s down time")
            from_up: list[float] = []
            from_stop: list[float] = []
            for _ in range(rounds):
                await asyncio.sleep(2.5)  # > stable_after: backoff resets
                stopped = time.monotonic()
                await cloud.stop()
                await asyncio.sleep(down)
                await cloud.start()
                up = time.monotonic()
                seen = await wait_online(nodes, 120)
                from_up += [t - up for t in seen.values()]
                from_stop += [t - stopped for t in seen.values()]
                if len(seen) < count:
                    print(f"  {count - len(seen)} gateways not back within 120 s")
            print(f"reconnect after cloud is back: {quantiles(from_up)}")
            print(f"reconnect after cloud stopped: {quantiles(from_stop)}")
            p50 = statistics.median(from_up)
            print(f"RESULT p50 {p50:.2f} s vs target 5 s: {'PASS' if p50 <= 5 else 'FAIL'}")


if __name__ == "__main__":
    quiet_logs()
    args = [float(a) for a in sys.argv[1:]]
    asyncio.run(main(int(args[0]) if args else 20, int(args[1]) if len(args) > 1 else 3,
                     args[2] if len(args) > 2 else 2.0))
