"""How fast a call trace starts and stops (issue 5 leftovers, ``trace.calls``).

    .venv/bin/python bench/trace_bench.py [--runs 10] [--interface lo]

Needs root (or CAP_NET_RAW) and tcpdump. Runs the ``sip`` component on a temporary
state dir and times, through the command router: ``trace.calls`` until every tcpdump
says "listening on" (the moment the answer goes back, so the technician's first call
is captured) and ``trace.stop`` until the file is closed and described. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

from clgwd.commands import CommandContext, CommandRouter
from clgwd.config import parse_config
from clgwd.sip.trace import CallTrace
from clgwd.store import Store


async def measure(runs: int, interface: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="clgwd-trace-bench-") as tmp:
        config = parse_config(f"state: {{dir: {Path(tmp)}}}\n"
                              f"sip: {{trace: {{interfaces: [{interface}], keep: 2}}}}\n")
        router, ctx = CommandRouter(), CommandContext(actor="local:cli")
        starts, stops = [], []
        async with Store(config) as store, CallTrace(config, store, router):
            for _ in range(runs):
                began = time.perf_counter()
                await router.call("trace.calls", {"duration_minutes": 1}, ctx)
                starts.append(time.perf_counter() - began)
                began = time.perf_counter()
                await router.call("trace.stop", {}, ctx)
                stops.append(time.perf_counter() - began)
    return {"runs": runs, "start_median_ms": round(statistics.median(starts) * 1000, 1),
            "start_max_ms": round(max(starts) * 1000, 1),
            "stop_median_ms": round(statistics.median(stops) * 1000, 1),
            "stop_max_ms": round(max(stops) * 1000, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--interface", default="lo")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args.runs, args.interface))))


if __name__ == "__main__":
    main()
