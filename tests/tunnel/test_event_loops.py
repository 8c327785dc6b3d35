"""Transport behaviour where uvloop differs from asyncio, pinned on both loops.

The daemon runs on uvloop when it is installed (``daemon.event_loop: auto``), so every
assumption the tunnel makes about ``asyncio.Transport`` must hold there too.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from clgwd.tunnel.session import READ_HIGH_WATER, Role, Session, Stream

from .conftest import RecordingChannel

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
