"""Shared set-up of the mDNS benchmarks: the namespace LAN and the peer's watcher."""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

from tests.net.conftest import PYTHON, Lan, Procs

T = TypeVar("T")

GW_NETWORK = """\
ports: [{{name: eth0, mode: static, address: {address}}}]
mdns: {{enabled: true, http_port: 8080, https_port: 8443}}
"""


OneRun = Callable[[Lan, Procs, Path], Awaitable[float]]


def gateway_and_peer(lan: Lan) -> tuple[str, str]:
    """Two namespaces on ``lan``: the gateway's (no address yet) and the peer's (.2)."""
    gw_ns, peer_ns = lan.add_ns(), lan.add_ns()
    lan.attach(gw_ns)
    lan.attach(peer_ns, address="198.18.0.2/24")
    return gw_ns, peer_ns


def main(what: str, one_run: OneRun, target: float) -> None:
    """Command line: ``python -m bench.<name> [RUNS]`` (default 5 runs)."""
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    asyncio.run(run_figure(what, one_run, runs, target))


async def run_figure(what: str, one_run: OneRun, runs: int, target: float) -> None:
    """Run ``one_run`` ``runs`` times on fresh LANs and print each figure and a summary."""
    results = []
    for i in range(runs):
        with tempfile.TemporaryDirectory(prefix="clgwd-bench-") as tmp:
            seconds = await with_lan(lambda lan, procs, t=Path(tmp): one_run(lan, procs, t))
        print(f"run {i + 1}: {what}: {seconds:.2f} s")
        results.append(seconds)
    verdict = "PASS" if max(results) <= target else "FAIL"
    print(f"{what}: median {statistics.median(results):.2f} s, max {max(results):.2f} s "
          f"over {runs} runs (target <= {target:g} s): {verdict}")


async def with_lan(body: Callable[[Lan, Procs], Awaitable[T]]) -> T:
    """Run ``body`` with a fresh LAN; namespaces and processes are removed afterwards."""
    hub = Lan.new_hub()
    procs = Procs()
    try:
        return await body(hub, procs)
    finally:
        await procs.close()
        hub.remove()


async def watch_until_resolved(procs: Procs, ns: str, name: str,
                               expected: str) -> asyncio.Future[float]:
    """Start the watcher in ``ns``; the future gives the unix time of resolution."""
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, PYTHON, str(Path(__file__).with_name("mdns_watch.py")),
        name, "198.18.0.2", expected, stdout=asyncio.subprocess.PIPE)
    procs.procs.append(proc)
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 10)
    if line.strip() != b"ready":
        raise RuntimeError(f"watcher did not start: {line!r}")

    async def resolved() -> float:
        assert proc.stdout is not None
        out = await asyncio.wait_for(proc.stdout.readline(), 15)
        return float(out.split()[1])

    return asyncio.ensure_future(resolved())
