"""Both ends over a real websocket on 127.0.0.1 (the way the cloud link will carry it).

The benchmark's carrier (``bench/wslink.py``) stands in for the link (gateway side) and
the refcloud server (cloud side): binary messages in, ``on_binary`` called from one
reader task; ``send_binary`` waits under back-pressure. Every test runs on both of the
link's websocket backends (websockets and picows).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from bench.wslink import gateway_connect, picows_serve, pump, pump_conn
from clgwd.link.ws_picows import PicowsConnection
from clgwd.protocol.channel import BinaryEndpoint
from clgwd.refcloud.tunnels import CloudTunnels

from .conftest import HarnessFactory

pytestmark = pytest.mark.both_loops
"""Also on uvloop (tests/conftest.py): the refcloud and the bench may run on it."""

WS_OPTIONS: dict[str, Any] = {"compression": None, "max_size": 2**17, "max_queue": 16}


@pytest.fixture(params=["websockets", "picows"])
def carrier(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@dataclass
class LinkEnds:
    """The asyncio transports under the websocket: gateway end and cloud end."""

    gateway: asyncio.Transport
    cloud: asyncio.Transport


@contextlib.asynccontextmanager
async def ws_link(gateway: BinaryEndpoint, cloud: CloudTunnels,
                  carrier: str) -> AsyncIterator[LinkEnds]:
    if carrier == "picows":
        async with picows_link(gateway, cloud) as ends:
            yield ends
        return
    accepted: list[ServerConnection] = []

    async def handler(ws: ServerConnection) -> None:
        accepted.append(ws)
        await pump(ws, cloud)

    async with serve(handler, "127.0.0.1", 0, **WS_OPTIONS) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/", **WS_OPTIONS) as ws, \
                asyncio.TaskGroup() as tg:
            reader = tg.create_task(pump(ws, gateway))
            await cloud.wait_up()
            try:
                yield LinkEnds(ws.transport, accepted[0].transport)
            finally:
                await ws.close()
                await reader


@contextlib.asynccontextmanager
async def picows_link(gateway: BinaryEndpoint, cloud: CloudTunnels) -> AsyncIterator[LinkEnds]:
    accepted: list[PicowsConnection] = []
    async with asyncio.TaskGroup() as tg:
        server = await picows_serve(tg, cloud, accepted)
        async with server:
            port = server.sockets[0].getsockname()[1]
            conn, transport = await gateway_connect(f"ws://127.0.0.1:{port}/", "picows")
            reader = tg.create_task(pump_conn(conn, transport, gateway))
            await cloud.wait_up()
            try:
                yield LinkEnds(transport, accepted[0].socket_transport)
            finally:
                await conn.close()
                await reader
                await accepted[0].close()


async def test_tunnel_over_real_websocket(harness: HarnessFactory, carrier: str) -> None:
    """Echo and a 4 MiB transfer both ways through a websocket on loopback."""
    h = await harness(link=False)
    await h.start()
    async with ws_link(h.component.mux, h.cloud, carrier), h.proxy() as proxy:
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
        harness: HarnessFactory, carrier: str) -> None:
    """Closing the websocket resets streams now and stops tunnels after the grace."""
    h = await harness(link=False, extra="  link_grace: 0.3\n")
    await h.start()
    async with h.proxy() as proxy:
        async with ws_link(h.component.mux, h.cloud, carrier):
            reader, writer = await asyncio.open_connection(*proxy.address)
            writer.write(b"x")
            assert await reader.readexactly(1) == b"x"
        assert await reader.read() == b""
        writer.close()
    stopped = await h.wait_audit("tunnel_stop", timeout=5)
    assert stopped[0]["reason"] == "link-down"


async def test_stalled_cloud_reader_bounds_the_gateway(harness: HarnessFactory,
                                                      carrier: str) -> None:
    """The cloud stops reading the websocket while a LAN service streams to it: the
    gateway's link write buffer stays within ``write_limit`` + one frame, the gateway
    stops reading the LAN socket, and the flow resumes intact when the cloud reads."""
    h = await harness(link=False, mode="source")
    await h.start()
    async with ws_link(h.component.mux, h.cloud, carrier) as ends, h.proxy() as proxy:
        reader, writer = await asyncio.open_connection(*proxy.address)
        assert len(await reader.readexactly(65536)) == 65536
        ends.cloud.pause_reading()
        peak, last, stable_since = 0, -1, asyncio.get_running_loop().time()
        while asyncio.get_running_loop().time() - stable_since < 0.5:
            await asyncio.sleep(0.02)
            peak = max(peak, ends.gateway.get_write_buffer_size())
            if h.echo.sent != last:
                last, stable_since = h.echo.sent, asyncio.get_running_loop().time()
        assert peak <= 64 * 1024 + 65542, "gateway link buffer grew past write_limit"
        ends.cloud.resume_reading()
        received = 0
        while received < 4 * 1024 * 1024:
            chunk = await asyncio.wait_for(reader.read(1 << 20), 5)
            assert chunk and set(chunk) == {ord("s")}
            received += len(chunk)
        assert h.echo.sent > last, "the LAN source never resumed"
        writer.close()
