"""Both ends over a real websocket on 127.0.0.1 (the way the cloud link will carry it).

The benchmark's carrier (``bench/wslink.py``) stands in for the link (gateway side) and
the refcloud server (cloud side): binary messages in, ``on_binary`` called from one
reader task; ``send_binary`` is ``websocket.send`` (which waits under back-pressure).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from bench.wslink import pump
from clgwd.channel import BinaryEndpoint
from clgwd.refcloud.tunnels import CloudTunnels

from .conftest import HarnessFactory

pytestmark = pytest.mark.both_loops
"""Also on uvloop (tests/conftest.py): the refcloud and the bench may run on it."""

WS_OPTIONS: dict[str, Any] = {"compression": None, "max_size": 2**17, "max_queue": 16}


@contextlib.asynccontextmanager
async def ws_link(gateway: BinaryEndpoint, cloud: CloudTunnels) -> AsyncIterator[None]:
    async def handler(ws: ServerConnection) -> None:
        await pump(ws, cloud)

    async with serve(handler, "127.0.0.1", 0, **WS_OPTIONS) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/", **WS_OPTIONS) as ws, \
                asyncio.TaskGroup() as tg:
            reader = tg.create_task(pump(ws, gateway))
            await cloud.wait_up()
            try:
                yield
            finally:
                await ws.close()
                await reader


async def test_tunnel_over_real_websocket(harness: HarnessFactory) -> None:
    """Echo and a 4 MiB transfer both ways through a websocket on loopback."""
    h = await harness(link=False)
    await h.start()
    async with ws_link(h.component.mux, h.cloud), h.proxy() as proxy:
        reader, writer = await asyncio.open_connection(*proxy.address)
        writer.write(b"over websocket")
        assert await reader.readexactly(14) == b"over websocket"
        payload = os.urandom(4 * 1024 * 1024)

        async def send() -> None:
            writer.write(payload)
            await writer.drain()
            writer.write_eof()

        sender = asyncio.create_task(send())
        echoed = await reader.read()
        await sender
        writer.close()
        assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()
    closed = await h.wait_audit("stream_close")
    assert closed[0]["bytes_from_cloud"] == 14 + len(payload)


async def test_websocket_close_ends_streams_and_grace_stops_tunnels(
        harness: HarnessFactory) -> None:
    """Closing the websocket resets streams now and stops tunnels after the grace."""
    h = await harness(link=False, extra="  link_grace: 0.3\n")
    await h.start()
    async with h.proxy() as proxy:
        async with ws_link(h.component.mux, h.cloud):
            reader, writer = await asyncio.open_connection(*proxy.address)
            writer.write(b"x")
            assert await reader.readexactly(1) == b"x"
        assert await reader.read() == b""
        writer.close()
    stopped = await h.wait_audit("tunnel_stop", timeout=5)
    assert stopped[0]["reason"] == "link-down"
