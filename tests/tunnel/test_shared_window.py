"""Shared window: while a bulk stream shares the link with an interactive one, no
stream holds more credit than the link needs (about twice its bandwidth-delay
product), so the bulk stream cannot queue a whole window in the kernel ahead of the
interactive stream's frames.

The peer here is simulated: it sends whatever credit the gateway gave it, as fast as
it can, and the test watches how much credit it ever holds.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from clgwd.protocol import wire
from clgwd.protocol.credit import RATE_INTERVAL, SessionLimits, shared_window
from clgwd.protocol.streams import Stream

from .conftest import RecordingChannel
from .test_scheduling import open_stream, started_gateway

LIMITS = SessionLimits()
FLOOR = LIMITS.shared_window_floor


class MeasuredChannel(RecordingChannel):
    """A link that reports a loopback-like smallest RTT (``PathAwareChannel``)."""

    def __init__(self, rtt: float | None) -> None:
        super().__init__()
        self.rtt = rtt

    def path_min_rtt(self) -> float | None:
        return self.rtt


def test_shared_window_is_twice_the_bandwidth_delay_product_within_bounds() -> None:
    assert shared_window(750e6, 3e-6, LIMITS) == FLOOR  # loopback: 4.5 KB -> floor
    assert shared_window(10e6, 0.01, LIMITS) == 200_000  # 2 x 10 MB/s x 10 ms
    assert shared_window(12.5e6, 0.05, LIMITS) == LIMITS.stream_window  # WAN: capped
    assert shared_window(1e9, None, LIMITS) == LIMITS.stream_window  # unknown RTT


async def most_credit_held(channel: RecordingChannel, *, other_active: bool,
                           other_size: int = 64) -> int:
    """Stream 1 downloads 8 MiB as fast as its credit allows while stream 3 is either
    active (``other_size`` bytes beside every frame: 64 is a request, 64 KiB another
    download) or idle; the most credit stream 1's sender held once the credit granted
    before the first rate sample was spent."""
    streams: dict[int, Stream] = {}
    async with asyncio.TaskGroup() as tg:
        session = started_gateway(channel, tg, streams)
        bulk = open_stream(session, 1, streams)
        small = open_stream(session, 3, streams)
        if not other_active:
            small.last_activity = time.monotonic() - 60
        sent = most = 0
        sampled = False
        watch_from = 2 * LIMITS.stream_window  # credit granted before the sample is spent
        while sent < 8 << 20:
            size = min(wire.MAX_DATA_PAYLOAD, bulk.recv_remaining)
            assert size > 0, f"the sender ran out of credit after {sent} bytes"
            session.feed(wire.encode_data(1, b"b" * size))
            sent += size
            if other_active:
                session.feed(wire.encode_data(3, b"q" * other_size))
            if sent >= LIMITS.stream_window and not sampled:
                # A first window in ~30 ms: the next DATA samples ~35 MB/s.
                await asyncio.sleep(RATE_INTERVAL * 1.5)
                sampled = True
            elif sent > watch_from:
                most = max(most, bulk.recv_remaining)
        session.close("test over")
    return most


async def test_a_bulk_stream_holds_little_credit_while_another_is_active() -> None:
    assert await most_credit_held(MeasuredChannel(3e-6), other_active=True) <= FLOOR


async def test_a_stream_alone_keeps_the_whole_window() -> None:
    """An idle neighbour (a kept-alive connection) does not count as sharing."""
    held = await most_credit_held(MeasuredChannel(3e-6), other_active=False)
    assert held > LIMITS.stream_window // 2


async def test_downloads_among_themselves_keep_the_whole_window() -> None:
    """Two bulk streams: nobody waits for a small frame, so no window shrinks."""
    held = await most_credit_held(MeasuredChannel(3e-6), other_active=True,
                                  other_size=wire.MAX_DATA_PAYLOAD)
    assert held > LIMITS.stream_window // 2


async def test_an_upload_beside_a_download_is_not_interactive() -> None:
    """A stream that sends a lot and receives little is bulk too: the download beside
    it keeps its window."""
    streams: dict[int, Stream] = {}
    async with asyncio.TaskGroup() as tg:
        session = started_gateway(MeasuredChannel(3e-6), tg, streams)
        download = open_stream(session, 1, streams)
        upload = open_stream(session, 3, streams)
        upload_socket = upload.protocol()
        most = 0
        for sample in range(4):
            for _ in range(16):
                size = min(wire.MAX_DATA_PAYLOAD, download.recv_remaining)
                session.feed(wire.encode_data(1, b"d" * size))
                upload_socket.data_received(b"u" * wire.MAX_DATA_PAYLOAD)
                session.feed(wire.encode_window(3, wire.MAX_DATA_PAYLOAD))  # peer reads
                if sample > 1:
                    most = max(most, download.recv_remaining)
            await asyncio.sleep(RATE_INTERVAL * 1.5)
        assert upload.bytes_to_peer > 2 << 20  # it really uploaded
        assert most > LIMITS.stream_window // 2
        session.close("test over")


@pytest.mark.parametrize("rtt", [None, 0.05])
async def test_long_or_unknown_paths_keep_the_whole_window(rtt: float | None) -> None:
    """A link without an RTT figure, or a WAN path, keeps the configured window."""
    channel = MeasuredChannel(rtt) if rtt is not None else RecordingChannel()
    held = await most_credit_held(channel, other_active=True)
    assert held > LIMITS.stream_window // 2


async def test_a_slow_sample_does_not_give_the_window_back() -> None:
    """When sharing ends the window doubles per sample back to the configured one: a
    bulk stream that slowed for one sample must not get a whole window of credit at
    once (that burst is what queues ahead of the next request)."""
    streams: dict[int, Stream] = {}
    async with asyncio.TaskGroup() as tg:
        session = started_gateway(MeasuredChannel(3e-6), tg, streams)
        open_stream(session, 1, streams)
        open_stream(session, 3, streams)

        async def sample(bulk_size: int) -> int:
            session.feed(wire.encode_data(1, b"b" * bulk_size))
            session.feed(wire.encode_data(3, b"q" * 64))
            await asyncio.sleep(RATE_INTERVAL * 1.5)
            return session._credit_window()  # takes the sample

        await sample(wire.MAX_DATA_PAYLOAD)
        assert await sample(wire.MAX_DATA_PAYLOAD) == FLOOR  # shared
        caps = [await sample(64) for _ in range(6)]  # the bulk stream went quiet
        assert caps == [2 * FLOOR, 4 * FLOOR, 8 * FLOOR, 16 * FLOOR, 32 * FLOOR,
                        LIMITS.stream_window], caps
        session.close("test over")
