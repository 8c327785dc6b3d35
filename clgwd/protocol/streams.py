"""Tunnel streams: one bidirectional byte stream per local TCP socket, and its glue.

* **Local sockets are asyncio Protocols** so back-pressure is ``pause_reading`` /
  ``pause_writing`` without extra buffering tasks: a stream costs no task while idle.
* **Local write buffers report every drain.** Local sockets use a write-buffer high-water
  mark of 0, so any byte the transport keeps (a partial send, or uvloop's queued
  write) means ``pause_writing`` and its drain means ``resume_writing``, where the
  withheld credit goes back (``clgwd.protocol.credit``). Without that call, credit for
  bytes that drained silently would only return with the stream's next DATA, which never
  comes once the sender is out of credit.

The session (``clgwd.protocol.session``) owns the streams; a stream calls back into it to
queue itself for sending, return credit and close.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, cast

from clgwd.protocol import wire
from clgwd.protocol.wire import ErrorCode, ProtocolError

if TYPE_CHECKING:
    from clgwd.protocol.session import Session

_LOGGER = logging.getLogger(__name__)

READ_HIGH_WATER: Final = 256 * 1024
"""Pause reading a local socket when this many bytes wait for credit or the writer."""
READ_LOW_WATER: Final = 64 * 1024


class StreamState(enum.Enum):
    """Lifecycle of one stream; changed only in ``Stream._set_state``."""

    OPENING = "opening"
    OPEN = "open"
    LOCAL_DONE = "local_done"
    """We sent FIN; the peer may still send."""
    REMOTE_DONE = "remote_done"
    """The peer sent FIN; we may still send."""
    CLOSED = "closed"



@dataclass(frozen=True)
class StreamClosed:
    """What the owner learns when a stream ends (the gateway audits this)."""

    stream_id: int
    reason: str
    code: ErrorCode
    bytes_from_peer: int
    bytes_to_peer: int
    duration: float


class Stream:
    """One bidirectional byte stream bound to a local TCP socket."""

    def __init__(self, session: Session, stream_id: int, send_credit: int) -> None:
        self.session = session
        self.id = stream_id
        self.state = StreamState.OPENING
        self.send_credit = send_credit
        self.recv_remaining = session.limits.stream_window
        self.unreturned = 0
        """Bytes received whose stream credit has not gone back (batched)."""
        self.conn_held = 0
        """Bytes received whose connection credit has not gone back (still in memory)."""
        self.chunks: collections.deque[bytes] = collections.deque()
        self.head_offset = 0
        self.buffered = 0
        self.local_eof = False
        self.fin_sent = False
        self.in_ready = False
        self.deficit = 0
        self.turn_over = False
        """Used its quantum; moves behind the other ready streams at the next pick."""
        self.transport: asyncio.Transport | None = None
        self.reading_paused = False
        self.writing_paused = False
        self.bytes_from_peer = 0
        self.bytes_to_peer = 0
        self.opened_at = time.monotonic()
        self.last_activity = self.opened_at
        self.sample_bytes = 0
        """DATA bytes received or sent since the session's last rate sample."""
        self.context: Any = None
        """Owner data (the gateway keeps the tunnel name and ticket id here)."""
        self.opened: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        """Cloud side: resolves with the connected peer address, or fails on OPEN_ERR."""

    def _set_state(self, new: StreamState) -> None:
        _LOGGER.debug("stream %d: %s -> %s", self.id, self.state.value, new.value)
        self.state = new

    @property
    def closed(self) -> bool:
        return self.state is StreamState.CLOSED

    def protocol(self) -> StreamProtocol:
        """A protocol instance for ``loop.create_connection`` or an accepted socket."""
        return StreamProtocol(self)

    # -- state transitions driven by FIN ------------------------------------------------

    def _fin_sent(self) -> None:
        self.fin_sent = True
        if self.state is StreamState.REMOTE_DONE:
            self.session.close_stream(self, "fin", ErrorCode.NO_ERROR, send_rst=False)
        elif self.state is StreamState.OPEN:
            self._set_state(StreamState.LOCAL_DONE)

    def _fin_received(self) -> None:
        """The peer will send no more: shut down our socket's write side (after its
        buffered bytes), like TCP shutdown(SHUT_WR); the other direction stays open."""
        if self.state not in (StreamState.OPEN, StreamState.LOCAL_DONE):
            raise ProtocolError(ErrorCode.STREAM_CLOSED, f"FIN on stream {self.id} "
                                f"in state {self.state.value}")
        if self.transport is not None and self.transport.can_write_eof():
            self.transport.write_eof()
        if self.state is StreamState.LOCAL_DONE:
            self.session.close_stream(self, "fin", ErrorCode.NO_ERROR, send_rst=False)
        else:
            self._set_state(StreamState.REMOTE_DONE)

    # -- outbound bytes (local socket -> peer) ------------------------------------------

    def sendable(self, connection_credit: int) -> int:
        return min(self.buffered, self.send_credit, connection_credit, wire.MAX_DATA_PAYLOAD)

    def take(self, size: int) -> bytes | bytearray | memoryview:
        """Remove ``size`` buffered bytes (a view when one chunk suffices: no copy)."""
        head = self.chunks[0]
        start = self.head_offset
        if len(head) - start >= size:
            piece: bytes | bytearray | memoryview = memoryview(head)[start:start + size]
            self.head_offset += size
            if self.head_offset == len(head):
                self.chunks.popleft()
                self.head_offset = 0
        else:
            parts = bytearray()
            while len(parts) < size:
                head = self.chunks[0]
                need = size - len(parts)
                avail = len(head) - self.head_offset
                if avail <= need:
                    parts += memoryview(head)[self.head_offset:]
                    self.chunks.popleft()
                    self.head_offset = 0
                else:
                    parts += memoryview(head)[self.head_offset:self.head_offset + need]
                    self.head_offset += need
            piece = parts
        self.buffered -= size
        if self.reading_paused and self.buffered <= READ_LOW_WATER:
            self.reading_paused = False
            if self.transport is not None and not self.transport.is_closing():
                self.transport.resume_reading()
        return piece


class StreamProtocol(asyncio.Protocol):
    """Glue between a local TCP socket and its stream."""

    def __init__(self, stream: Stream) -> None:
        self.stream = stream

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop transports are not subclasses
        stream = self.stream
        if stream.closed:  # reset while we were connecting
            transport.abort()
            return
        stream.transport = transport
        # Every buffered byte pauses and every drain resumes: credit for bytes that
        # left the buffer is returned at once (see "Local write buffers" above).
        transport.set_write_buffer_limits(high=0, low=0)
        if stream.state is StreamState.OPENING:
            # Nothing may be read before the far end accepted the stream.
            transport.pause_reading()
            stream.reading_paused = True

    def data_received(self, data: bytes) -> None:
        stream = self.stream
        if stream.closed:
            return
        stream.chunks.append(data)
        stream.buffered += len(data)
        stream.last_activity = time.monotonic()
        session = stream.session
        session.mark_ready(stream)
        # Send first, then decide: pausing on what is left (not on what was read) spares
        # the pause/resume pair per read, two epoll_ctl calls, while the link keeps up.
        session.flush()
        if stream.closed:
            return
        if stream.buffered >= READ_HIGH_WATER or stream.reading_paused:
            # Also when already "paused": uvloop starts reading after connection_made
            # returns even if it paused, so the pause of an OPENING stream is redone here.
            stream.reading_paused = True
            transport = stream.transport
            assert transport is not None
            if transport.is_reading():
                transport.pause_reading()

    def eof_received(self) -> bool:
        stream = self.stream
        stream.local_eof = True
        stream.session.mark_ready(stream)
        stream.session.flush()
        return True  # keep the socket open for the other direction (half-close)

    def pause_writing(self) -> None:
        self.stream.writing_paused = True

    def resume_writing(self) -> None:
        self.stream.writing_paused = False
        self.stream.session.return_credit(self.stream, force=True)
        self.stream.session.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        stream = self.stream
        if not stream.closed:
            reason = f"local socket lost ({type(exc).__name__})" if exc else "local socket closed"
            stream.session.close_stream(stream, reason, ErrorCode.CANCEL, send_rst=True)



class StreamRefused(Exception):
    """OPEN_ERR or RST answered our OPEN."""

    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(f"{code.name}: {reason}")
        self.code = code
        self.reason = reason


def fail_open(stream: Stream, error: StreamRefused) -> None:
    """Fail a pending open; marked retrieved because the opener may be gone (gateway)."""
    if not stream.opened.done():
        stream.opened.set_exception(error)
        stream.opened.exception()

