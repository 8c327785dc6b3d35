"""Priority below the scheduler: a small stream's frame overtakes queued bulk data.

The writer hands one frame at a time to the link and waits while the link's buffer is
above its low-water mark (``send_binary`` blocks, as websockets' ``send`` does when the
transport is paused; the link socket's ``TCP_NOTSENT_LOWAT`` keeps the kernel from
absorbing the queue instead). Bulk data therefore waits in the session's own per-stream
buffers, where deficit round-robin lets an interactive stream's frame go next.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from clgwd.protocol import wire
from clgwd.protocol.credit import SessionLimits
from clgwd.protocol.session import Role, Session
from clgwd.protocol.streams import READ_HIGH_WATER, Stream
from clgwd.protocol.wire import Frame, FrameType


class FakeTransport:
    """Just enough of ``asyncio.Transport`` for a stream: records writes, no socket."""

    def __init__(self) -> None:
        self.paused = False

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def is_reading(self) -> bool:
        return not self.paused

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        pass

    def abort(self) -> None:
        pass

    close = abort


class GatedChannel:
    """A link whose buffer is "full": each ``send_binary`` waits for one ``release``."""

    def __init__(self) -> None:
        self.sent: list[Frame] = []
        self.waiting = asyncio.Event()
        self._gate: asyncio.Queue[None] = asyncio.Queue()

    async def send_binary(self, data: bytes) -> None:
        self.waiting.set()
        await self._gate.get()
        self.waiting.clear()
        self.sent.append(wire.decode(bytes(data)))

    async def release(self) -> Frame:
        """Let one frame through and return it."""
        count = len(self.sent)
        self._gate.put_nowait(None)
        async with asyncio.timeout(5):
            while len(self.sent) == count:
                await asyncio.sleep(0)
        return self.sent[-1]


def started_gateway(channel: Any, tg: asyncio.TaskGroup,
                    streams: dict[int, Stream]) -> Session:
    """A started gateway session that records the streams the cloud opens in
    ``streams``, with plenty of connection credit to send."""
    session = Session(channel, Role.GATEWAY, tg,
                      limits=SessionLimits(connection_window=16 << 20),
                      on_open=lambda s, st, r: streams.__setitem__(st.id, st))
    session.start()
    session.feed(wire.encode_window(0, 8 << 20))
    return session


def open_stream(session: Session, sid: int, streams: dict[int, Stream],
                transport: FakeTransport | None = None) -> Stream:
    """The cloud opens ``sid``; the gateway accepts it with a fake local socket."""
    session.feed(wire.OpenRequest("t", "192.0.2.1", 80, "a.b", 1 << 20).encode(sid))
    stream = streams[sid]
    stream.protocol().connection_made(cast(Any, transport or FakeTransport()))
    session.accept(stream, "192.0.2.1:80")
    return stream


async def test_small_frame_overtakes_queued_bulk_data() -> None:
    channel = GatedChannel()
    streams: dict[int, Stream] = {}
    async with asyncio.TaskGroup() as tg:
        session = started_gateway(channel, tg, streams)
        bulk = open_stream(session, 1, streams)
        small = open_stream(session, 3, streams)
        control = [await channel.release() for _ in range(3)]
        assert {f.type for f in control} == {FrameType.WINDOW, FrameType.OPEN_OK}
        bulk_proto = bulk.protocol()
        for _ in range(4):
            bulk_proto.data_received(b"b" * 65536)
        first = await channel.release()  # one bulk frame leaves; the link holds the next
        small.protocol().data_received(b"q" * 64)
        following = [await channel.release() for _ in range(2)]
        sent = [(f.type, f.stream_id, len(f.body)) for f in (first, *following)]
        assert sent == [(FrameType.DATA, 1, 65536), (FrameType.DATA, 1, 65536),
                        (FrameType.DATA, 3, 64)], sent
        # The rest of the bulk data still waits in the session, behind the small frame.
        assert bulk.buffered == 65536
        session.close("test over")


class DirectChannel:
    """A ``DirectBinaryChannel`` that records which path each frame took."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Frame]] = []
        self.open = True

    def writable(self) -> bool:
        return self.open

    def send_binary_nowait(self, data: bytes) -> None:
        assert self.open, "send_binary_nowait while not writable"
        self.sent.append(("direct", wire.decode(bytes(data))))

    async def send_binary(self, data: bytes) -> None:
        self.sent.append(("task", wire.decode(bytes(data))))


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_frames_are_written_in_the_callback_when_the_link_is_free() -> None:
    """No task switch per frame while the link is writable; the writer task takes over
    when it is not, and the byte order of the stream is kept across both paths."""
    channel = DirectChannel()
    streams: dict[int, Stream] = {}
    async with asyncio.TaskGroup() as tg:
        session = Session(channel, Role.GATEWAY, tg,
                          on_open=lambda s, st, r: streams.__setitem__(st.id, st))
        session.start()
        await settle()
        stream = open_stream(session, 1, streams)
        await settle()
        channel.sent.clear()
        proto = stream.protocol()
        proto.data_received(b"a" * 100)
        # Written before this coroutine yields: in the data_received callback itself.
        assert [(path, f.type, bytes(f.body)) for path, f in channel.sent] == [
            ("direct", FrameType.DATA, b"a" * 100)]
        channel.open = False
        proto.data_received(b"b" * 100)
        assert len(channel.sent) == 1  # link busy: nothing written synchronously
        await settle()
        channel.open = True
        proto.data_received(b"c" * 100)
        await settle()
        assert [(path, bytes(f.body)) for path, f in channel.sent] == [
            ("direct", b"a" * 100), ("task", b"b" * 100), ("direct", b"c" * 100)]
        session.close("test over")


class CountingTransport(FakeTransport):
    """Counts pauses: each pause/resume pair costs two ``epoll_ctl`` calls."""

    def __init__(self) -> None:
        super().__init__()
        self.pauses = 0

    def pause_reading(self) -> None:
        self.pauses += 1
        super().pause_reading()


async def test_reading_pauses_only_when_the_link_cannot_take_the_read() -> None:
    """A full-size read that the link takes at once leaves the socket reading; the same
    read while the link is busy pauses it (the bytes wait for the link, not for us)."""
    channel = DirectChannel()
    streams: dict[int, Stream] = {}
    async with asyncio.TaskGroup() as tg:
        session = started_gateway(channel, tg, streams)
        await settle()
        transport = CountingTransport()
        stream = open_stream(session, 1, streams, transport)
        proto = stream.protocol()
        await settle()
        transport.pauses = 0  # the pause while OPENING, lifted by accept
        for _ in range(3):
            proto.data_received(b"r" * READ_HIGH_WATER)
        assert (transport.pauses, stream.buffered) == (0, 0)
        channel.open = False
        proto.data_received(b"r" * READ_HIGH_WATER)
        assert (transport.pauses, stream.buffered) == (1, READ_HIGH_WATER)
        assert stream.reading_paused and not transport.is_reading()
        session.close("test over")
