"""Minimal websocket carrier for the bench: the role the cloud link and refcloud play.

Binary messages in, ``on_binary`` called in order from one reader task; ``send_binary``
is ``websocket.send`` (waits under back-pressure). Production code never imports
websockets outside the link; the bench may. The carrier uses the production link's
limits (``CloudConfig`` defaults) and socket tuning (``clgwd.linksock``), so the
figures are those of the shipped settings.

``TUNNEL_BENCH_RCVBUF`` sets ``SO_RCVBUF`` on both ends (``cloud.receive_buffer``).
Unset, the bench uses the shipped default (0 = kernel autotuning, right for WAN links).
A small buffer bounds the receiver's kernel queue, where small frames can wait behind
bulk data: 262144 made little difference on a quiet machine (loaded p50 1.58 vs 1.68 ms,
bulk within noise); 65536 bounds it more but cost ~25 % throughput here.
``TUNNEL_BENCH_QUEUES=1`` prints, once a second, the bytes queued below the tunnel
scheduler on each end (transport buffer, kernel unsent, kernel receive queue): where a
small frame waits behind bulk data.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
import struct
import sys
import termios
import time
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection

from clgwd.channel import BinaryEndpoint, LinkDown
from clgwd.config.cloud import CloudConfig
from clgwd.link.ws import WsConnection
from clgwd.linksock import tune_link_socket

_DEFAULTS = CloudConfig()
RECEIVE_BUFFER = int(os.environ.get("TUNNEL_BENCH_RCVBUF", _DEFAULTS.receive_buffer))
WS_OPTIONS: dict[str, Any] = {
    "compression": None,        # payload is opaque bytes; deflate would only cost CPU
    "max_size": 2**17,          # one frame (64 KiB + header) per message, with headroom
    "max_queue": _DEFAULTS.max_queue,
    "write_limit": _DEFAULTS.write_limit,
    "ping_interval": 20,
}
_SIOCOUTQNSD = 0x894B  # Linux: bytes in the send queue not yet sent


class WsChannel:
    """``DirectBinaryChannel`` over one websockets connection (the link's wrapper)."""

    def __init__(self, ws: ClientConnection | ServerConnection) -> None:
        self.ws = ws
        self._direct = WsConnection(ws, _DEFAULTS.write_limit)

    async def send_binary(self, data: bytes) -> None:
        try:
            await self.ws.send(data)
        except websockets.ConnectionClosed as err:
            raise LinkDown(str(err)) from None

    def writable(self) -> bool:
        return self._direct.writable()

    def send_binary_nowait(self, data: bytes) -> None:
        self._direct.send_binary_nowait(data)


async def pump(ws: ClientConnection | ServerConnection, endpoint: BinaryEndpoint) -> None:
    """Run one connection: link up, feed every binary message, link down."""
    tune_link_socket(ws.transport.get_extra_info("socket"), receive_buffer=RECEIVE_BUFFER)
    async with asyncio.TaskGroup() as tg:
        watcher = (tg.create_task(_watch_queues(ws)) if os.environ.get("TUNNEL_BENCH_QUEUES")
                   else None)
        await endpoint.on_link_up(WsChannel(ws))
        try:
            async for message in ws:
                if isinstance(message, bytes):
                    await endpoint.on_binary(message)
        except websockets.ConnectionClosed:
            pass
        finally:
            if watcher is not None:
                watcher.cancel()
            await endpoint.on_link_down()


def _ioctl_int(fd: int, request: int) -> int:
    buf = bytearray(4)
    fcntl.ioctl(fd, request, buf)
    return int(struct.unpack("i", buf)[0])


async def _watch_queues(ws: ClientConnection | ServerConnection) -> None:
    """Sample each millisecond; print averages and peaks (KiB) each busy second."""
    fd = ws.transport.get_extra_info("socket").fileno()
    sums, peaks, samples, since = [0, 0, 0], [0, 0, 0], 0, time.monotonic()
    while True:
        await asyncio.sleep(0.001)
        values = (ws.transport.get_write_buffer_size(), _ioctl_int(fd, _SIOCOUTQNSD),
                  _ioctl_int(fd, termios.FIONREAD))
        samples += 1
        for i, value in enumerate(values):
            sums[i] += value
            peaks[i] = max(peaks[i], value)
        if time.monotonic() - since >= 1.0:
            if any(peaks):
                print(f"pid {os.getpid()} queued KiB (transport, unsent, received): avg "
                      f"{[s // samples >> 10 for s in sums]} peak {[p >> 10 for p in peaks]}",
                      file=sys.stderr, flush=True)
            sums, peaks, samples, since = [0, 0, 0], [0, 0, 0], 0, time.monotonic()
