"""Connection-level credit survives streams that die with data in flight.

Every byte a sender spends from the connection window must come back once the receiver
drops or delivers it, whatever way the stream ends (the receiver batches its returns, so
up to a quarter window may wait there); a leak would starve every later stream once
enough streams had died mid-transfer (64-stream bulk runs end that way).
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct

import pytest

from clgwd.protocol.session import Session

from .conftest import HarnessFactory

pytestmark = pytest.mark.both_loops
"""Also on uvloop (tests/conftest.py): the refcloud and the bench may run on it."""

CONNECTION_WINDOW = 1 << 20
STREAM_WINDOW = 256 << 10


def _abort(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a killed client would."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _settled(cloud: Session, gateway: Session) -> None:
    """Wait until both ends have no streams and every byte of connection credit is
    either back with the sender or waiting in the receiver's return batch."""

    def state() -> tuple[int, int, int, int]:
        return (len(cloud.streams), len(gateway.streams),
                cloud._conn_send_credit + gateway._conn_unreturned,
                gateway._conn_send_credit + cloud._conn_unreturned)

    settled = (0, 0, gateway.limits.connection_window, cloud.limits.connection_window)
    try:
        async with asyncio.timeout(10):
            while state() != settled:
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"streams cloud/gateway and connection credit each way: "
                             f"{state()}, expected {settled}") from None


async def test_connection_credit_comes_back_after_streams_die_mid_transfer(
        harness: HarnessFactory) -> None:
    h = await harness(mode="stall", extra=(f"  stream_window: {STREAM_WINDOW}\n"
                                           f"  connection_window: {CONNECTION_WINDOW}\n"))
    await h.start()
    payload = os.urandom(STREAM_WINDOW)
    async with h.proxy() as proxy:
        clients = [await asyncio.open_connection(*proxy.address) for _ in range(16)]
        for _, writer in clients:
            writer.write(payload)  # 16 x 256 KiB: 4x the connection window, stalled LAN
        await asyncio.sleep(0.5)
        for i, (_, writer) in enumerate(clients):
            if i % 2:
                _abort(writer)
            else:
                writer.close()
        for lan_writer in h.echo.writers:
            lan_writer.transport.abort()
        assert h.cloud.session is not None and h.component.mux.session is not None
        await _settled(h.cloud.session, h.component.mux.session)
    h.echo.mode = "echo"
    async with h.proxy() as proxy:  # and the link still carries a full window
        reader, writer = await asyncio.open_connection(*proxy.address)
        big = os.urandom(2 * CONNECTION_WINDOW)
        writer.write(big)
        writer.write_eof()
        async with asyncio.timeout(10):
            assert await reader.read() == big
        writer.close()


async def test_credit_comes_back_when_cloud_readers_die_during_a_download(
        harness: HarnessFactory) -> None:
    """The LAN -> cloud direction: targets stream without end, clients read a little and
    vanish (half with RST); the gateway's sends stop and the cloud returns what it got."""
    h = await harness(mode="source", extra=(f"  stream_window: {STREAM_WINDOW}\n"
                                            f"  connection_window: {CONNECTION_WINDOW}\n"))
    await h.start()
    async with h.proxy() as proxy:
        clients = [await asyncio.open_connection(*proxy.address) for _ in range(16)]
        for reader, _ in clients:
            await reader.readexactly(100_000)
        for i, (_, writer) in enumerate(clients):
            if i % 2:
                _abort(writer)
            else:
                writer.close()
        assert h.cloud.session is not None and h.component.mux.session is not None
        await _settled(h.cloud.session, h.component.mux.session)
        reader, writer = await asyncio.open_connection(*proxy.address)
        async with asyncio.timeout(10):  # a new download still gets a full window's worth
            await reader.readexactly(4 * CONNECTION_WINDOW)
        writer.close()


async def test_idle_streams_below_the_return_batch_do_not_starve_the_connection(
        harness: HarnessFactory) -> None:
    """Streams that stop sending with less than a return batch (a quarter stream window)
    delivered must not keep that connection credit: enough of them (a 64-stream bulk
    run ending) would hold the whole connection window, and no stream could send."""
    h = await harness(mode="sink", extra=(f"  stream_window: {STREAM_WINDOW}\n"
                                          f"  connection_window: {CONNECTION_WINDOW}\n"))
    await h.start()
    chunk = os.urandom(STREAM_WINDOW // 4 - 4096)
    count = 3 * CONNECTION_WINDOW // 2 // len(chunk)  # 1.5 windows in under-batch pieces
    async with h.proxy() as proxy:
        clients = [await asyncio.open_connection(*proxy.address) for _ in range(count)]
        try:
            for _, writer in clients:
                writer.write(chunk)  # and the stream stays open, idle
            async with asyncio.timeout(10):
                while h.echo.received < count * len(chunk):
                    await asyncio.sleep(0.02)
        except TimeoutError:
            raise AssertionError(f"LAN got {h.echo.received} of {count * len(chunk)} bytes: "
                                 "connection credit held by idle streams") from None
        finally:
            for _, writer in clients:
                writer.close()
