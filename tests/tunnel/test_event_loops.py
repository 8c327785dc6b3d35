"""Transport behaviour where uvloop differs from asyncio, pinned on both loops.

The daemon runs on uvloop when it is installed (``daemon.event_loop: auto``), so every
assumption the tunnel makes about ``asyncio.Transport`` must hold there too.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from clgwd.protocol.session import Role, Session
from clgwd.protocol.streams import READ_HIGH_WATER, Stream
from clgwd.refcloud import tunnels

from .conftest import HarnessFactory, RecordingChannel

pytestmark = pytest.mark.both_loops


async def _flood(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A LAN target that sends 8 MiB at once, before anyone asks."""
    with contextlib.suppress(ConnectionError):
        writer.write(b"f" * (8 << 20))
        await writer.drain()
    writer.close()


async def test_an_opening_stream_does_not_read_its_socket() -> None:
    """Until the far end accepts, a stream reads nothing (at most one read on uvloop,
    which starts reading after ``connection_made`` even when that paused it)."""
    server = await asyncio.start_server(_flood, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, asyncio.TaskGroup() as tg:
        session = Session(RecordingChannel(), Role.GATEWAY, tg)
        stream = Stream(session, 1, 0)
        session.streams[stream.id] = stream
        transport, _ = await asyncio.get_running_loop().create_connection(
            stream.protocol, "127.0.0.1", port)
        await asyncio.sleep(0.3)
        assert stream.buffered <= READ_HIGH_WATER
        assert not transport.is_reading()
        session.close("test over")


async def test_launch_reads_little_before_its_stream_opens(
        harness: HarnessFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Launch client that floods while the OPEN is still on its way is held to one
    read: the placeholder protocol keeps early bytes, so reading must really stop
    (accepted sockets honour a pause in ``connection_made`` on both loops; connected
    ones do not on uvloop, see above)."""
    early_bytes = 0
    original = tunnels._ClientProtocol.data_received

    def counting(self: tunnels._ClientProtocol, data: bytes) -> None:
        nonlocal early_bytes
        early_bytes += len(data)
        original(self, data)

    monkeypatch.setattr(tunnels._ClientProtocol, "data_received", counting)
    h = await harness()
    await h.start()
    assert h.link.to_gateway is not None
    h.link.to_gateway.paused.clear()  # the OPEN waits in the link
    async with h.proxy() as proxy:
        _, writer = await asyncio.open_connection(*proxy.address)
        writer.write(b"f" * (8 << 20))
        await asyncio.sleep(0.3)
        assert early_bytes <= READ_HIGH_WATER
        h.link.to_gateway.paused.set()
        writer.transport.abort()
