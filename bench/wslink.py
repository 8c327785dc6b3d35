"""Minimal websocket carrier for the bench: the role the cloud link and refcloud play.

Binary messages in, ``on_binary`` called in order from one reader task; ``send_binary``
waits under back-pressure. Two backends, as the link has (``--ws``): websockets (the
link's ``WsConnection``) and picows (the link's ``PicowsConnection``). Production code never imports
websockets outside the link; the bench may. The carrier uses the production link's
limits (``CloudConfig`` defaults) and socket tuning (``clgwd.protocol.sockopts``), so the
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

import picows
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.server import ServerConnection

from clgwd.config.cloud import CloudConfig
from clgwd.link.backends import opener
from clgwd.link.ws import Closed, WsConnection, WsSettings
from clgwd.link.ws_picows import PicowsConnection
from clgwd.link.wsapi import BinarySinkConnection, LinkConnection
from clgwd.protocol.channel import BinaryEndpoint, DirectBinaryEndpoint, LinkDown
from clgwd.protocol.rpc import SUBPROTOCOL
from clgwd.protocol.sockopts import tune_link_socket

_DEFAULTS = CloudConfig()
RECEIVE_BUFFER = int(os.environ.get("TUNNEL_BENCH_RCVBUF", _DEFAULTS.receive_buffer))
WS_OPTIONS: dict[str, Any] = {
    "compression": None,        # payload is opaque bytes; deflate would only cost CPU
    "max_size": 2**17,          # one frame (64 KiB + header) per message, with headroom
    "max_queue": _DEFAULTS.max_queue,
    "write_limit": _DEFAULTS.write_limit,
    "ping_interval": 20,
    "subprotocols": [SUBPROTOCOL],  # server end: the link requires it
}
_SIOCOUTQNSD = 0x894B  # Linux: bytes in the send queue not yet sent


class WsChannel:
    """``DirectBinaryChannel`` over one link connection, as the link's session offers it."""

    def __init__(self, conn: LinkConnection) -> None:
        self._conn = conn
        self.writable = conn.writable
        self.send_binary_nowait = conn.send_binary_nowait
        self.path_min_rtt = conn.path_min_rtt

    async def send_binary(self, data: bytes) -> None:
        try:
            await self._conn.send_binary(data)
        except Closed as err:
            raise LinkDown(str(err)) from None


async def pump(ws: ClientConnection | ServerConnection, endpoint: BinaryEndpoint) -> None:
    """Run one websockets connection: link up, feed every binary message, link down."""
    await pump_conn(WsConnection(ws, _DEFAULTS.write_limit), ws.transport, endpoint)


async def pump_conn(conn: LinkConnection, transport: asyncio.Transport,
                    endpoint: BinaryEndpoint) -> None:
    """Run one connection of either backend: link up, feed binary messages, link down."""
    tune_link_socket(transport.get_extra_info("socket"), receive_buffer=RECEIVE_BUFFER)
    async with asyncio.TaskGroup() as tg:
        watcher = (tg.create_task(_watch_queues(transport))
                   if os.environ.get("TUNNEL_BENCH_QUEUES") else None)
        await endpoint.on_link_up(WsChannel(conn))
        # As the link does (clgwd.link.session.Session.open_binary_lane).
        if isinstance(endpoint, DirectBinaryEndpoint) and \
                isinstance(conn, BinarySinkConnection):
            conn.set_binary_sink(endpoint.on_binary_nowait)
        try:
            while True:
                message = await conn.recv()
                if isinstance(message, bytes):
                    await endpoint.on_binary(message)
        except Closed:
            pass
        finally:
            if watcher is not None:
                watcher.cancel()
            await endpoint.on_link_down()


LINK_SETTINGS = WsSettings(
    max_message_bytes=WS_OPTIONS["max_size"], max_queue=_DEFAULTS.max_queue,
    write_limit=_DEFAULTS.write_limit, ping_interval=WS_OPTIONS["ping_interval"],
    ping_timeout=WS_OPTIONS["ping_interval"], open_timeout=_DEFAULTS.open_timeout,
    receive_buffer=RECEIVE_BUFFER)
"""The production link's limits, as ``WS_OPTIONS`` gives them to websockets."""


async def gateway_connect(url: str, backend: str) -> tuple[LinkConnection, asyncio.Transport]:
    """Client end (the gateway role) through the production ``open_connection`` of the
    chosen backend, with the link's subprotocol and the production limits."""
    conn = await opener(backend)(url, None, SUBPROTOCOL, LINK_SETTINGS)  # type: ignore[arg-type]
    assert isinstance(conn, WsConnection | PicowsConnection)
    return conn, conn.socket_transport


async def picows_serve(tg: asyncio.TaskGroup, endpoint: BinaryEndpoint,
                       accepted: list[PicowsConnection] | None = None) -> asyncio.Server:
    """Server end on picows (the cloud role): one pump task per connection; each
    connection is also appended to ``accepted`` when given (tests)."""

    class _Served(PicowsConnection):
        def on_ws_connected(self, transport: picows.WSTransport) -> None:
            super().on_ws_connected(transport)
            if accepted is not None:
                accepted.append(self)
            tg.create_task(pump_conn(self, transport.underlying_transport, endpoint))

    def factory(_request: object) -> picows.WSUpgradeResponseWithListener:
        response = picows.WSUpgradeResponse.create_101_response(
            extra_headers={"Sec-WebSocket-Protocol": SUBPROTOCOL})
        return picows.WSUpgradeResponseWithListener(response, _Served(LINK_SETTINGS))

    return await picows.ws_create_server(factory, "127.0.0.1", 0,
                                         max_frame_size=WS_OPTIONS["max_size"])


def _ioctl_int(fd: int, request: int) -> int:
    buf = bytearray(4)
    fcntl.ioctl(fd, request, buf)
    return int(struct.unpack("i", buf)[0])


async def _watch_queues(transport: asyncio.Transport) -> None:
    """Sample each millisecond; print averages and peaks (KiB) each busy second."""
    fd = transport.get_extra_info("socket").fileno()
    sums, peaks, samples, since = [0, 0, 0], [0, 0, 0], 0, time.monotonic()
    while True:
        await asyncio.sleep(0.001)
        values = (transport.get_write_buffer_size(), _ioctl_int(fd, _SIOCOUTQNSD),
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
