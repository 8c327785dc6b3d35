"""The outbound half of a tunnel session: the control lane, the ready streams, the writer.

* **One writer task, two lanes.** Control frames (WINDOW, OPEN*, FIN-less resets,
  PING/PONG, GOAWAY) go first; DATA is chosen by deficit round-robin over streams that
  have bytes and credit, with a quantum of one maximum frame, so a bulk download
  cannot starve an interactive page (snitun#352).
* **Write in the callback when the link is free.** When the writer task is idle and the
  channel is a ``DirectBinaryChannel`` that is writable, ready frames are written in the
  callback that produced them (``flush``): no task wake-up, no wait behind the rest of
  the loop iteration. The writer task only takes over when the link pushes back.

``FrameScheduler`` is the base of ``clgwd.protocol.session.Session``; the session adds
the inbound side and stream control, ``clgwd.protocol.credit`` the credit it grants.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import enum
import logging
from typing import Final

from clgwd.protocol import wire
from clgwd.protocol.channel import BinaryChannel, DirectBinaryChannel, LinkDown
from clgwd.protocol.streams import Stream, StreamState
from clgwd.protocol.wire import ErrorCode, ProtocolError

_LOGGER = logging.getLogger(__name__)

MAX_CONTROL_BACKLOG: Final = 8192
"""Control frames queued for a peer that does not read them; more means it floods us
(PINGs, OPENs) faster than it drains our answers, and the session fails instead of
queueing without bound."""
FLUSH_BUDGET: Final = 16
"""Frames written synchronously in one callback before the rest goes to the writer task
(bounds the time one callback holds the event loop)."""


class SessionState(enum.Enum):
    ACTIVE = "active"
    FAILED = "failed"
    """The peer broke the protocol; GOAWAY sent, every frame is now ignored."""
    CLOSED = "closed"


class FrameScheduler(abc.ABC):
    """Queues control frames and ready streams and writes them, in order, to the link."""

    def __init__(self, channel: BinaryChannel, name: str) -> None:
        self.channel = channel
        self.name = name
        self.state = SessionState.ACTIVE
        self.frames_sent = 0
        self._control: collections.deque[bytes] = collections.deque()
        self._ready: collections.deque[Stream] = collections.deque()
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._direct = channel if isinstance(channel, DirectBinaryChannel) else None
        self._writer_idle = False
        self._flush_scheduled = False
        self._loop = asyncio.get_running_loop()
        self._conn_send_credit = wire.INITIAL_CONNECTION_WINDOW
        """Connection credit the peer granted us (WINDOW on stream 0 adds to it)."""
        self._writer: asyncio.Task[None] | None = None

    @abc.abstractmethod
    def fail(self, err: ProtocolError) -> None:
        """Protocol violation (the session implements it)."""

    def _send_control(self, frame: bytes) -> None:
        if self.state is SessionState.CLOSED:
            return
        if len(self._control) >= MAX_CONTROL_BACKLOG and self.state is SessionState.ACTIVE:
            self.fail(ProtocolError(ErrorCode.LIMIT, "peer does not read our control frames"))
            return
        self._control.append(frame)
        self._kick()


    def mark_ready(self, stream: Stream) -> None:
        """The stream may have something to send; queue it for the scheduler."""
        if not stream.in_ready and stream.state in (StreamState.OPEN, StreamState.REMOTE_DONE):
            stream.in_ready = True
            self._ready.append(stream)
            self._kick()

    def _kick(self) -> None:
        """Something became sendable. With an idle writer and a direct channel the
        caller's ``flush`` (or, for other entry points, one soon-scheduled flush) writes
        it; otherwise the writer task is woken."""
        if self._direct is not None and self._writer_idle:
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self._loop.call_soon(self._scheduled_flush)
            return
        self._wake.set()

    def _scheduled_flush(self) -> None:
        self._flush_scheduled = False
        self.flush()

    def flush(self) -> None:
        """Write ready frames now while the writer task is idle and the link is writable;
        leave the rest (link busy, or past ``FLUSH_BUDGET``) to the writer task. Frames
        keep their order: either this or the writer takes them, one at a time, from
        ``next_frame``, and the writer holds none while idle."""
        direct = self._direct
        if direct is None or not self._writer_idle or self.state is SessionState.CLOSED:
            return
        for _ in range(FLUSH_BUDGET):
            if not direct.writable():
                break
            frame = self.next_frame()
            if frame is None:
                return
            direct.send_binary_nowait(frame)
            self.frames_sent += 1
        self._wake.set()

    def next_frame(self) -> bytes | None:
        """Control first, then deficit round-robin over streams with data and credit."""
        if self._control:
            return self._control.popleft()
        ready = self._ready
        while ready:
            stream = ready[0]
            if stream.closed:
                ready.popleft()
                stream.in_ready = False
                continue
            if stream.turn_over:
                # Rotate now, not when the quantum was used: a stream that became ready
                # since (an interactive request) then goes before the bulk stream.
                stream.turn_over = False
                if len(ready) > 1:
                    ready.rotate(-1)
                    continue
            size = stream.sendable(self._conn_send_credit)
            if size == 0:
                if stream.buffered == 0 and stream.local_eof and not stream.fin_sent:
                    ready.popleft()
                    stream.in_ready = False
                    stream._fin_sent()
                    return wire.encode_fin(stream.id)
                if stream.buffered and stream.send_credit and not self._conn_send_credit:
                    return None  # blocked on connection credit; WINDOW 0 wakes us
                ready.popleft()
                stream.in_ready = False
                stream.deficit = 0
                continue
            if stream.deficit <= 0:
                stream.deficit += wire.MAX_DATA_PAYLOAD
            size = min(size, stream.deficit)
            frame = wire.encode_data(stream.id, stream.take(size))
            stream.deficit -= size
            stream.send_credit -= size
            self._conn_send_credit -= size
            stream.bytes_to_peer += size
            stream.sample_bytes += size
            stream.turn_over = stream.deficit <= 0 or not stream.buffered
            return frame
        return None

    async def _write_loop(self) -> None:
        channel = self.channel
        wake = self._wake
        try:
            while True:
                frame = self.next_frame()
                if frame is None:
                    self._drained.set()
                    wake.clear()
                    self._writer_idle = True
                    try:
                        await wake.wait()
                    finally:
                        self._writer_idle = False
                    continue
                await channel.send_binary(frame)
                self.frames_sent += 1
        except LinkDown:
            _LOGGER.debug("%s: link down while writing", self.name)

