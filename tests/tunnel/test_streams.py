"""Protocol behaviour of both ends over the in-memory link: data, half-close, credit."""

from __future__ import annotations

import asyncio
import os
import time

from clgwd.protocol import wire
from clgwd.protocol.credit import SessionLimits
from clgwd.protocol.streams import READ_HIGH_WATER, StreamRefused, StreamState

from .conftest import HarnessFactory, MemoryLink


async def _roundtrip(host: str, port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(payload)
    writer.write_eof()
    data = await reader.read()
    writer.close()
    return data


async def test_echo_through_tunnel(harness: HarnessFactory) -> None:
    """Bytes go cloud -> LAN and back unchanged; the stream is audited open and closed."""
    h = await harness()
    await h.start()
    async with h.proxy() as proxy:
        data = await _roundtrip(*proxy.address, b"hello tunnel")
    assert data == b"hello tunnel"
    opened = await h.wait_audit("stream_open")
    closed = await h.wait_audit("stream_close")
    assert opened[0]["target"] == f"127.0.0.1:{h.echo.port}"
    assert opened[0]["admin"] == "admin@example.test"
    assert opened[0]["ticket_id"]
    assert closed[0]["bytes_from_cloud"] == 12 and closed[0]["bytes_to_cloud"] == 12
    assert closed[0]["reason"] == "fin"


async def test_bulk_both_directions_is_intact(harness: HarnessFactory) -> None:
    """8 MiB of random bytes survive many windows' worth of credit round trips."""
    h = await harness(extra="  stream_window: 262144\n  connection_window: 524288\n")
    await h.start()
    payload = os.urandom(8 * 1024 * 1024)
    async with h.proxy() as proxy:
        reader, writer = await asyncio.open_connection(*proxy.address)

        async def send() -> None:
            for i in range(0, len(payload), 100_000):
                writer.write(payload[i:i + 100_000])
                await writer.drain()
            writer.write_eof()

        sender = asyncio.create_task(send())
        data = await reader.read(-1)
        await sender
        writer.close()
    assert data == payload


async def test_half_close_keeps_other_direction_open(harness: HarnessFactory) -> None:
    """After the cloud's FIN, the LAN side can still answer (TCP shutdown semantics)."""
    h = await harness(mode="sink")
    await h.start()
    async with h.proxy() as proxy:
        reader, writer = await asyncio.open_connection(*proxy.address)
        writer.write(b"request")
        writer.write_eof()
        async with asyncio.timeout(5):
            while not h.echo.writers or h.echo.received < 7:
                await asyncio.sleep(0.01)
        lan_writer = h.echo.writers[0]
        # The sink read until EOF then closed; the answer direction had stayed usable.
        assert await reader.read() == b""
        writer.close()
        assert lan_writer.is_closing()
    closed = await h.wait_audit("stream_close")
    assert closed[0]["bytes_from_cloud"] == 7
    assert closed[0]["reason"] == "fin"


async def test_lan_half_close_then_cloud_sends(harness: HarnessFactory) -> None:
    """The LAN peer's EOF reaches the cloud as EOF while the cloud may still send."""
    h = await harness()
    await h.start()
    async with h.proxy() as proxy:
        reader, writer = await asyncio.open_connection(*proxy.address)
        writer.write(b"abc")
        await writer.drain()
        assert await reader.readexactly(3) == b"abc"
        writer.write(b"def")
        writer.write_eof()
        assert await reader.read() == b"def"
        writer.close()


async def test_stalled_lan_reader_keeps_memory_bounded(harness: HarnessFactory) -> None:
    """A LAN target that never reads: the cloud sender runs out of credit, no queue grows."""
    window = 262144
    h = await harness(mode="stall", extra=f"  stream_window: {window}\n")
    await h.start()
    async with h.proxy() as proxy:
        _reader, writer = await asyncio.open_connection(*proxy.address)
        chunk = b"x" * 65536
        sent = 0
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            writer.write(chunk)
            sent += len(chunk)
            try:
                async with asyncio.timeout(0.2):
                    await writer.drain()
            except TimeoutError:
                break
        gw = h.component.mux.session
        assert gw is not None
        (stream,) = gw.streams.values()
        assert stream.transport is not None
        lan_buffered = stream.transport.get_write_buffer_size()
        # Gateway memory for the stream: at most one window in the LAN socket's buffer.
        assert lan_buffered <= window
        assert stream.recv_remaining >= 0
        # The cloud side holds no credit and buffers at most its read high-water mark.
        cloud_session = h.cloud.session
        assert cloud_session is not None
        (cstream,) = cloud_session.streams.values()
        assert cstream.send_credit < 65536
        assert cstream.buffered <= READ_HIGH_WATER + 256 * 1024
        assert sent > window  # we really tried to push more than a window
        writer.transport.abort()


async def test_link_drop_resets_streams(harness: HarnessFactory) -> None:
    """Streams live on one link connection; a drop ends them on both sides."""
    h = await harness()
    await h.start()
    async with h.proxy() as proxy:
        reader, writer = await asyncio.open_connection(*proxy.address)
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        await h.link.down()
        data = await reader.read()
        assert data == b""
        writer.close()
    closed = await h.wait_audit("stream_close")
    assert "link down" in closed[0]["reason"]


async def test_link_down_longer_than_grace_stops_tunnels(harness: HarnessFactory) -> None:
    """Fail closed: after the grace period every started tunnel stops and is audited."""
    h = await harness(extra="  link_grace: 0.3\n")
    await h.start()
    await h.link.down()
    await asyncio.sleep(0.1)
    assert h.component.manager.tunnels["echo"].state.value == "started"
    stopped = await h.wait_audit("tunnel_stop", timeout=3)
    assert stopped[0]["reason"] == "link-down"
    assert h.component.manager.tunnels["echo"].state.value == "stopped"


async def test_short_link_outage_keeps_tunnels(harness: HarnessFactory) -> None:
    """A reconnect within the grace period keeps tunnels started."""
    h = await harness(extra="  link_grace: 0.5\n")
    await h.start()
    await h.link.down()
    await asyncio.sleep(0.1)
    await h.link.up(h.tg)
    await asyncio.sleep(0.7)
    assert h.component.manager.tunnels["echo"].state.value == "started"
    async with h.proxy() as proxy:
        assert await _roundtrip(*proxy.address, b"again") == b"again"


async def test_interactive_stream_not_starved_by_bulk(harness: HarnessFactory) -> None:
    """Deficit round-robin: small request/response stays fast while a bulk stream runs."""
    h = await harness(maxsize=16)
    await h.start()
    async with h.proxy() as proxy:
        bulk_r, bulk_w = await asyncio.open_connection(*proxy.address)
        stop = asyncio.Event()

        async def pump() -> None:
            chunk = b"b" * 65536
            while not stop.is_set():
                bulk_w.write(chunk)
                await bulk_w.drain()

        async def drain() -> None:
            while not stop.is_set() and await bulk_r.read(65536):
                pass

        tasks = [asyncio.create_task(pump()), asyncio.create_task(drain())]
        await asyncio.sleep(0.3)
        r, w = await asyncio.open_connection(*proxy.address)
        latencies = []
        for _ in range(30):
            t0 = time.perf_counter()
            w.write(b"q" * 64)
            await r.readexactly(64)
            latencies.append(time.perf_counter() - t0)
        stop.set()
        for t in tasks:
            t.cancel()
        bulk_w.transport.abort()
        w.close()
        latencies.sort()
        # Under a saturating bulk transfer a 64-byte echo still completes quickly.
        assert latencies[len(latencies) // 2] < 0.2, latencies


async def test_window_credit_returned_is_bounded(harness: HarnessFactory) -> None:
    """The gateway never grants more credit than its configured windows."""
    h = await harness(extra="  stream_window: 131072\n")
    await h.start()
    async with h.proxy() as proxy:
        data = await _roundtrip(*proxy.address, b"z" * 1_000_000)
    assert len(data) == 1_000_000
    session = h.component.mux.session
    assert session is not None
    assert session._conn_recv_remaining <= session.limits.connection_window


async def test_many_streams_interleave(harness: HarnessFactory) -> None:
    """Twenty concurrent streams each get their own bytes back."""
    h = await harness()
    await h.start(**{})
    async with h.proxy() as proxy:
        payloads = [os.urandom(50_000 + i) for i in range(20)]
        results = await asyncio.gather(*(_roundtrip(*proxy.address, p) for p in payloads))
    assert results == payloads


async def test_cloud_session_refuses_gateway_open(harness: HarnessFactory) -> None:
    """A gateway-side OPEN is a protocol error at the cloud (only the cloud opens)."""
    h = await harness()
    session = h.cloud.session
    assert session is not None
    await h.cloud.on_binary(wire.OpenRequest("echo", "127.0.0.1", 1, "t", 65536).encode(2))
    assert h.cloud.protocol_errors and "may not open" in h.cloud.protocol_errors[0].message


def test_stream_states_are_explicit() -> None:
    """The state machine names every phase a stream can be in."""
    assert {s.value for s in StreamState} == {
        "opening", "open", "local_done", "remote_done", "closed"}
    assert SessionLimits().stream_window == 1024 * 1024


_ = MemoryLink


async def test_slow_cloud_reader_pushes_back_to_lan(harness: HarnessFactory) -> None:
    """The link stops delivering to the cloud: the gateway stops reading the LAN socket
    instead of queueing; its buffered bytes stay under the read high-water mark."""
    h = await harness(mode="source", maxsize=8)
    await h.start()
    async with h.proxy() as proxy:
        reader, writer = await asyncio.open_connection(*proxy.address)
        await reader.readexactly(65536)  # the stream is flowing
        assert h.link.to_cloud is not None
        h.link.to_cloud.paused.clear()  # the cloud side stops reading the link
        await asyncio.sleep(0.5)
        sent_at_pause = h.echo.sent
        await asyncio.sleep(0.5)
        gw = h.component.mux.session
        assert gw is not None
        (stream,) = gw.streams.values()
        assert stream.reading_paused
        assert stream.buffered <= READ_HIGH_WATER + 256 * 1024
        assert h.link.to_cloud.queue.qsize() <= 8
        assert h.echo.sent - sent_at_pause <= 65536  # the LAN service is blocked too
        h.link.to_cloud.paused.set()
        got = 0
        async with asyncio.timeout(5):
            while got < 4 * 1024 * 1024:
                got += len(await reader.read(1 << 20))
        writer.transport.abort()


async def test_session_stream_limit_refused_and_audited(harness: HarnessFactory) -> None:
    """Past ``tunnel.max_streams`` the session answers OPEN_ERR LIMIT, audited."""
    h = await harness(extra="  max_streams: 2\n")
    await h.start()
    request = lambda: wire.OpenRequest("echo", "127.0.0.1", h.echo.port, h.ticket(), 65536)  # noqa: E731
    await h.open_raw(request())
    await h.open_raw(request())
    try:
        await h.open_raw(request())
    except StreamRefused as err:
        assert err.code is wire.ErrorCode.LIMIT
    else:
        raise AssertionError("third stream was accepted")
    denied = await h.wait_audit("denied")
    assert denied[0]["reason"] == "session-stream-limit"
