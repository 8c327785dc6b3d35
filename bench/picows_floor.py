"""The "picows floor": the least any picows-based reverse tunnel must do, as a baseline.

Two processes, like clgwd's: the cloud side listens for TCP and is the websocket server;
the gateway side dials out as the websocket client (so, as in clgwd and by RFC 6455, it
masks everything it sends: LAN->cloud is the masked direction) and connects each stream
to its target. Binary messages are a 4-byte stream id and up to 64 KiB of payload (the
size of clgwd's DATA frames); text messages open and close streams.

Everything clgwd adds is left out: no per-stream credit (back-pressure is all-or-nothing
on the one websocket, so a slow stream stalls every other), no scheduler, no tickets,
no allowlist, no audit. What is kept is only what the job cannot go without, done the
cheapest way picows allows: reads land in a buffer with room for the frame headers in
front and are masked in place (``send_reuse_external_bytearray``), and received payloads
are written without a copy where asyncio copies what it cannot send at once (< 3.12).
It is not the fastest possible design (it reads 64 KiB at a time, clgwd 256 KiB), but
it does the least work per byte a picows tunnel can, so its bulk rate says what the
stack gives a tunnel before any flow control; the bench prints clgwd against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import socket
import struct
import sys
from typing import cast

from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect, ws_create_server

STREAM_ID = struct.Struct("!I")
PAYLOAD = 65536
WS_HEADER_ROOM = 14
"""``send_reuse_external_bytearray`` writes the websocket header into this room."""
OFFSET = WS_HEADER_ROOM + STREAM_ID.size
# Before 3.12 asyncio copies what a socket does not take at once, so handing it a view
# of picows' receive buffer is safe; from 3.12 it would keep the view, so copy there.
VIEWS_ARE_SAFE = sys.version_info < (3, 12)


class _Local(asyncio.BufferedProtocol):
    """One TCP connection at either end, carried as one stream id on the websocket."""

    def __init__(self, hub: _Hub, stream_id: int) -> None:
        self.hub = hub
        self.stream_id = stream_id
        self.transport: asyncio.Transport | None = None
        self.pending: list[bytes] = []
        self.buffer = bytearray()
        self.write_paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.get_extra_info("socket").setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.hub.streams[self.stream_id] = self
        for data in self.pending:
            self.transport.write(data)
        self.pending.clear()
        if self.hub.link_paused:
            self.transport.pause_reading()

    def get_buffer(self, sizehint: int) -> memoryview:
        self.buffer = bytearray(OFFSET + PAYLOAD)
        return memoryview(self.buffer)[OFFSET:]

    def buffer_updated(self, nbytes: int) -> None:
        frame, self.buffer = self.buffer, bytearray()  # picows owns it now; idle streams hold none
        if nbytes < PAYLOAD:  # asyncio still holds a view: the buffer cannot shrink
            frame = frame[:OFFSET + nbytes]
        STREAM_ID.pack_into(frame, WS_HEADER_ROOM, self.stream_id)
        self.hub.send_frame(frame)

    def eof_received(self) -> bool:
        self.hub.send_text(f"fin {self.stream_id}")
        return True

    def pause_writing(self) -> None:
        self.write_paused = True
        self.hub.local_paused(+1)

    def resume_writing(self) -> None:
        self.write_paused = False
        self.hub.local_paused(-1)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.hub.streams.pop(self.stream_id, None) is not None:
            self.hub.send_text(f"close {self.stream_id}")
        if self.write_paused:
            self.hub.local_paused(-1)

    def deliver(self, payload: memoryview) -> None:
        data = payload if VIEWS_ARE_SAFE else bytes(payload)
        if self.transport is None:
            self.pending.append(bytes(payload))
        else:
            self.transport.write(data)


class _Hub(WSListener):  # type: ignore[misc]  # picows ships no type information
    """The one websocket, and the streams on it."""

    def __init__(self, targets: dict[int, int] | None = None) -> None:
        self.targets = targets or {}
        self.streams: dict[int, _Local] = {}
        self.ws: WSTransport | None = None
        self.link_paused = False
        self.paused_locals = 0
        self.connected: asyncio.Future[_Hub] = asyncio.get_running_loop().create_future()

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.ws = transport
        if not self.connected.done():
            self.connected.set_result(self)

    def close(self) -> None:
        for stream in list(self.streams.values()):
            if stream.transport is not None:
                stream.transport.abort()
        if self.ws is not None:
            self.ws.disconnect(graceful=False)

    def send_frame(self, frame: bytearray) -> None:
        if self.ws is not None:
            self.ws.send_reuse_external_bytearray(WSMsgType.BINARY, frame, WS_HEADER_ROOM)

    def send_text(self, text: str) -> None:
        if self.ws is not None and not self.ws.is_disconnected:
            self.ws.send(WSMsgType.TEXT, text.encode())

    def pause_writing(self) -> None:
        self.link_paused = True
        for stream in self.streams.values():
            if stream.transport is not None:
                stream.transport.pause_reading()

    def resume_writing(self) -> None:
        self.link_paused = False
        for stream in self.streams.values():
            if stream.transport is not None:
                stream.transport.resume_reading()

    def local_paused(self, change: int) -> None:
        """A local socket's buffer is full: stop reading the websocket until it drains."""
        self.paused_locals += change
        if self.ws is None:
            return
        link = self.ws.underlying_transport
        if self.paused_locals > 0:
            link.pause_reading()
        else:
            link.resume_reading()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.BINARY:
            payload = frame.get_payload_as_memoryview()
            stream = self.streams.get(STREAM_ID.unpack_from(payload)[0])
            if stream is not None:
                stream.deliver(payload[STREAM_ID.size:])
        elif frame.msg_type == WSMsgType.TEXT:
            self._on_text(frame.get_payload_as_ascii_text().split())

    def _on_text(self, words: list[str]) -> None:
        verb, stream_id = words[0], int(words[1])
        if verb == "open":
            self._open(stream_id, int(words[2]))
            return
        stream = self.streams.get(stream_id)
        if stream is None or stream.transport is None:
            return
        if verb == "fin" and stream.transport.can_write_eof():
            stream.transport.write_eof()
        elif verb == "close":
            self.streams.pop(stream_id, None)
            stream.transport.close()

    def _open(self, stream_id: int, port: int) -> None:
        stream = _Local(self, stream_id)
        self.streams[stream_id] = stream
        loop = asyncio.get_running_loop()
        connecting = loop.create_connection(lambda: stream, "127.0.0.1", port)
        task = loop.create_task(connecting)  # bench helper: the process is throwaway
        task.add_done_callback(lambda done: done.cancelled() or done.exception())


async def cloud_main(ws_port: int, mapping: dict[str, int]) -> None:
    """Websocket server on ``ws_port``; once the gateway side has dialled in, each key
    of ``mapping`` is a TCP port whose connections become streams to the value port on
    the gateway side. Prints READY then; serves until cancelled."""
    loop = asyncio.get_running_loop()
    hub = _Hub()
    stream_ids = itertools.count(1)

    def accepted(target_port: int) -> _Local:
        stream_id = next(stream_ids)
        hub.send_text(f"open {stream_id} {target_port}")
        return _Local(hub, stream_id)

    async with contextlib.AsyncExitStack() as servers:
        servers.callback(hub.close)
        servers.push_async_callback(_closed, await ws_create_server(
            lambda _request: hub, "127.0.0.1", ws_port))
        await hub.connected
        for listen_port, target_port in mapping.items():
            servers.push_async_callback(_closed, await loop.create_server(
                functools.partial(accepted, target_port), "127.0.0.1", int(listen_port)))
        print("READY", flush=True)
        await asyncio.Event().wait()


async def gateway_main(ws_url: str) -> None:
    """Dial the cloud side and serve its streams until cancelled."""
    _transport, hub = await ws_connect(_Hub, ws_url)
    try:
        await asyncio.Event().wait()
    finally:
        hub.close()


async def _closed(server: asyncio.Server) -> None:
    server.close()
    await server.wait_closed()
