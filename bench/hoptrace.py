"""Where a small request's time goes, hop by hop, through the clgwd tunnel (bench only).

``TUNNEL_BENCH_TRACE=DIR python bench/tunnel_bench.py --only clgwd --measure latency``
makes the cloud and gateway processes log a ``CLOCK_MONOTONIC`` timestamp (the same
clock in every process) each time a 64-byte echo payload passes one of their hops;
the bench then prints, for idle and loaded echoes, how long each hop took:

    A cloud reads the request from the client socket
    B cloud hands the DATA frame to the link
    C gateway gets the frame from the link          (B->C: link transit, both kernels,
                                                     websockets and the reader task)
    D gateway reads the reply from the LAN target   (C->D: LAN write, target, LAN read)
    E gateway hands the reply frame to the link
    F cloud gets the reply frame from the link      (E->F: link transit back)

Only 64-byte payloads (70-byte frames) are logged, so bulk traffic costs one length
check per call. The echo client sends one request at a time, so the events of one
round trip are consecutive in time and are matched by order.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TextIO

ECHO_PAYLOAD = 64
ECHO_FRAME = ECHO_PAYLOAD + 6  # the tunnel's 6-byte frame header
HOPS = ("A", "B", "C", "D", "E", "F")
LABELS = {
    "A->B": "cloud: client read -> frame to link",
    "B->C": "link cloud->gateway",
    "C->D": "gateway: LAN write, target echo, LAN read",
    "D->E": "gateway: reply read -> frame to link",
    "E->F": "link gateway->cloud",
}


def install(role: str, directory: str) -> None:
    """Wrap the hops of this process's tunnel end (``role-cloud`` / ``role-gateway``)."""
    from websockets.asyncio.connection import Connection

    from clgwd.link import ws_picows
    from clgwd.link.ws import WsConnection
    from clgwd.protocol.session import Session
    from clgwd.protocol.streams import StreamProtocol

    out = Path(directory, f"{role}.log").open("a", buffering=1)  # noqa: SIM115 - for life
    cloud = role == "role-cloud"
    rx_local, to_link, from_link = ("A", "B", "F") if cloud else ("D", "E", "C")

    def mark(hop: str) -> None:
        out.write(f"{time.monotonic_ns()} {hop}\n")

    def on_size(size: int, hop: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(self: Any, data: Any, *args: Any, **kwargs: Any) -> Any:
            if len(data) == size:
                mark(hop)
            return fn(self, data, *args, **kwargs)
        return wrapper

    original_send = Connection.send

    async def send(self: Connection, message: Any, text: bool | None = None) -> None:
        if len(message) == ECHO_FRAME:
            mark(to_link)
        await original_send(self, message, text=text)

    StreamProtocol.data_received = on_size(  # type: ignore[method-assign]
        ECHO_PAYLOAD, rx_local, StreamProtocol.data_received)
    Session.feed = on_size(ECHO_FRAME, from_link, Session.feed)  # type: ignore[method-assign]
    WsConnection.send_binary_nowait = on_size(  # type: ignore[method-assign]
        ECHO_FRAME, to_link, WsConnection.send_binary_nowait)
    if ws_picows is not None:
        picows_connection = ws_picows.PicowsConnection
        picows_connection.send_binary_nowait = on_size(
            ECHO_FRAME, to_link, picows_connection.send_binary_nowait)
        original_picows_send = picows_connection.send_binary

        async def picows_send(self: Any, data: Any) -> None:
            if len(data) == ECHO_FRAME:
                mark(to_link)
            await original_picows_send(self, data)

        picows_connection.send_binary = picows_send
    Connection.send = send  # type: ignore[method-assign]


def _events(directory: Path) -> list[tuple[int, str]]:
    events = []
    for path in directory.glob("role-*.log"):
        for line in path.read_text().splitlines():
            stamp, hop = line.split()
            events.append((int(stamp), hop))
    return sorted(events)


def round_trips(events: Iterable[tuple[int, str]]) -> list[list[int]]:
    """Consecutive A..F sequences (stray events from bulk traffic break a sequence)."""
    trips, current = [], []
    for stamp, hop in events:
        if hop == "A":
            current = [stamp]
        elif current and HOPS[len(current)] == hop:
            current.append(stamp)
            if len(current) == len(HOPS):
                trips.append(current)
                current = []
    return trips


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(directory: Path, loaded_from_ns: int, out: TextIO) -> None:
    """Print the per-hop table; echoes from ``loaded_from_ns`` on ran under bulk load."""
    trips = round_trips(_events(directory))
    for label, part in (("idle", [t for t in trips if t[0] < loaded_from_ns]),
                        ("under bulk", [t for t in trips if t[0] >= loaded_from_ns])):
        if not part:
            continue
        print(f"\nper-hop time, {label} ({len(part)} echoes), us: p50 / p90 / p99", file=out)
        for i, key in enumerate(LABELS):
            spans = [(t[i + 1] - t[i]) / 1000 for t in part]
            print(f"  {key} {LABELS[key]:<44} {_pct(spans, .5):7.0f} {_pct(spans, .9):7.0f}"
                  f" {_pct(spans, .99):7.0f}", file=out)


def trace_dir() -> Path | None:
    value = os.environ.get("TUNNEL_BENCH_TRACE")
    return Path(value) if value else None
