"""SIP trunk monitoring cost: 500 trunks checked with OPTIONS, and dead-trunk detection.

    python bench/trunk_bench.py [--trunks 500] [--interval 30] [--window 60]

kamailio (started here on 127.0.0.1, UDP and TCP) answers every OPTIONS. The bench
runs the real ``trunks`` component in this process with N trunks at the given
interval, waits one interval so every trunk has been checked (first checks are spread
over the first interval), then measures over ``--window`` seconds:

- this process's CPU % of one core, against two baselines measured first in the same
  process over the same window: idle (the component open, no trunks), and a minimal
  asyncio pinger (pre-built OPTIONS bytes on one UDP socket at the same rate, answers
  only counted, nothing parsed), the floor of asyncio and the kernel for this traffic;
- kamailio's CPU % for answering the same OPTIONS, for scale;
- RSS growth per trunk (after the first interval, so channels and buffers exist).

At the same time one extra trunk with the default settings (interval 30 s, timeout
5 s, down after 3 failures) points at a responder of the bench's own, which stops
answering right after one of its checks; the bench prints how long the trunk took to
be reported down. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from clgwd.config import parse_config
from clgwd.sip.component import SipTrunks
from clgwd.sip.message import Request, parse_message
from clgwd.store import Store
from tests.sip.peers import kamailio, make_ca

TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def tree_cpu(pid: int) -> float:
    """CPU seconds of pid and its children (kamailio forks its workers)."""
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


@contextlib.asynccontextmanager
async def dying_peer() -> AsyncIterator[tuple[int, asyncio.Event, list[float]]]:
    """A UDP peer that answers until ``stop`` is set, then stays silent; ``died`` gets
    the time of its last answer."""
    stop = asyncio.Event()
    died: list[float] = []
    loop = asyncio.get_running_loop()

    class Proto(asyncio.DatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            if stop.is_set():
                return
            req = parse_message(data)
            assert isinstance(req, Request)
            via = req.headers.get_all("Via")[0]
            self.transport.sendto((
                f"SIP/2.0 200 OK\r\nVia: {via}\r\nFrom: {req.headers.get('From')}\r\n"
                f"To: {req.headers.get('To')};tag=b\r\nCall-ID: {req.call_id}\r\n"
                f"CSeq: {req.cseq[0]} OPTIONS\r\nContent-Length: 0\r\n\r\n").encode(), addr)
            stop.set()  # dies right after answering one check
            died.append(time.monotonic())

    transport, _ = await loop.create_datagram_endpoint(Proto, local_addr=("127.0.0.1", 0))
    try:
        yield int(transport.get_extra_info("sockname")[1]), stop, died
    finally:
        transport.close()


async def floor_pinger(port: int, count: int, interval: float, window: float) -> float:
    """CPU % of a minimal asyncio sender at ``count`` OPTIONS per ``interval``."""
    loop = asyncio.get_running_loop()
    answers = 0

    class Proto(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            nonlocal answers
            answers += 1

    transport, _ = await loop.create_datagram_endpoint(
        Proto, local_addr=("127.0.0.1", 0))
    lport = transport.get_extra_info("sockname")[1]
    packets = [(f"OPTIONS sip:127.0.0.1:{port} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{lport};"
                f"branch=z9hG4bKfloor{i};rport\r\nFrom: <sip:f@127.0.0.1>;tag={i}\r\n"
                f"To: <sip:127.0.0.1:{port}>\r\nCall-ID: floor{i}\r\nCSeq: 1 OPTIONS\r\n"
                "Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n").encode()
               for i in range(count)]

    async def one(packet: bytes) -> None:
        await asyncio.sleep(random.uniform(0, interval))
        while True:
            transport.sendto(packet, ("127.0.0.1", port))
            await asyncio.sleep(interval)

    tasks = [asyncio.ensure_future(one(p)) for p in packets]
    await asyncio.sleep(interval)
    cpu0, t0, seen = own_cpu(), time.monotonic(), answers
    await asyncio.sleep(window)
    busy = (own_cpu() - cpu0) / (time.monotonic() - t0) * 100
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    transport.close()
    print(f"floor pinger: {answers - seen} answers in {window:g} s", flush=True)
    return busy


async def detection(trunks: SipTrunks, port: int, died: list[float]) -> float:
    await trunks.add_trunk({"name": "dying", "host": "127.0.0.1", "port": port}, "bench")
    while trunks.trunk_json("dying")["state"] != "down":  # noqa: ASYNC110 - polls a snapshot
        await asyncio.sleep(0.1)
    return time.monotonic() - died[0]


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="trunk-bench-") as tmp_name:
        tmp = Path(tmp_name)
        (tmp / "state").mkdir()
        config = parse_config(f"state: {{dir: {tmp / 'state'}}}\n"
                              f"sip: {{monitor: {{max_trunks: {args.trunks + 10}}}}}\n")
        ca = await asyncio.to_thread(make_ca, tmp)
        async with kamailio(tmp, ca, children=2) as kam, Store(config) as store, \
                SipTrunks(config, store) as trunks, dying_peer() as (dport, _, died):
            gc.collect()
            rss0, cpu0, t0 = rss(), own_cpu(), time.monotonic()
            await asyncio.sleep(args.window)
            idle = (own_cpu() - cpu0) / (time.monotonic() - t0) * 100
            floor = await floor_pinger(kam.port, args.trunks, args.interval, args.window)
            gc.collect()
            rss0 = rss()
            detector = asyncio.ensure_future(detection(trunks, dport, died))
            started = time.monotonic()
            for i in range(args.trunks):
                await trunks.add_trunk({
                    "name": f"t{i:04d}", "host": "127.0.0.1", "port": kam.port,
                    "transport": args.transport, "interval": args.interval}, "bench")
            print(f"added {args.trunks} trunks in {time.monotonic() - started:.1f} s",
                  flush=True)
            await asyncio.sleep(args.interval + 5)  # every trunk checked once
            gc.collect()
            rss1 = rss()
            cpu1, kcpu1, t1 = own_cpu(), tree_cpu(kam.proc.pid), time.monotonic()
            await asyncio.sleep(args.window)
            wall = time.monotonic() - t1
            busy = (own_cpu() - cpu1) / wall * 100
            kam_busy = (tree_cpu(kam.proc.pid) - kcpu1) / wall * 100
            listing = trunks.listing()["trunks"]
            states: dict[str, int] = {}
            for t in listing:
                states[t["state"]] = states.get(t["state"], 0) + 1
            rtts = sorted(t["rtt_ms"] for t in listing if t.get("rtt_ms") is not None)
            detect = await asyncio.wait_for(detector, 200)
    print(f"trunks: {args.trunks} over {args.transport.upper()} at {args.interval:g} s "
          f"({args.trunks / args.interval:.1f} OPTIONS/s); states {states}")
    print(f"clgwd CPU: {busy:.2f} % of one core (idle baseline {idle:.2f} %; "
          f"monitoring adds {busy - idle:.2f} %, target <= 1 %)")
    print(f"floor (minimal asyncio pinger, same rate, no parsing): {floor:.2f} % "
          f"(clgwd/floor = {busy / floor:.1f}x)" if floor else "floor: below resolution")
    print(f"kamailio CPU answering the same OPTIONS: {kam_busy:.2f} % "
          f"(clgwd/kamailio = {busy / kam_busy:.1f}x)" if kam_busy else
          "kamailio CPU: below the clock tick resolution")
    print(f"RSS: {rss0 / 2**20:.1f} MiB -> {rss1 / 2**20:.1f} MiB, "
          f"{(rss1 - rss0) / args.trunks / 1024:.1f} KiB per trunk")
    if rtts:
        print(f"RTT ms: median {rtts[len(rtts) // 2]:.2f}, p99 "
              f"{rtts[int(len(rtts) * 0.99)]:.2f}")
    print(f"dead trunk detected after {detect:.1f} s at the defaults (interval 30 s, "
          "timeout 5 s, down after 3 failures: a peer dying just after a check is down "
          "after 3 x (30 + 5) = 105 s, one dying just before a check after 75 s)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trunks", type=int, default=500)
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--window", type=float, default=60.0)
    parser.add_argument("--transport", choices=["udp", "tcp"], default="udp")
    asyncio.run(main(parser.parse_args()))
