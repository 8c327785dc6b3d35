"""One multiplexed tunnel session over one link connection: streams, credit, scheduling.

Both ends run this same engine (the gateway as ``Role.GATEWAY``, the reference cloud as
``Role.CLOUD``); only the cloud may open streams. Why each piece is shaped as it is:

* **Credit, not watermarks.** A sender may only send DATA while it holds both stream
  and connection credit (HTTP/2 style). The receiver returns credit with WINDOW only
  once bytes have left its memory (reached the local socket's kernel buffer). So a
  slow local reader or a slow link pushes back to the far sender, nothing is dropped,
  and memory per stream is bounded by the window plus one socket read, by
  construction (snitun#353 and #376 are what the other designs hit).
* **Connection credit is never held by a stream's batching.** Stream credit goes back
  in batches of a quarter window; connection credit goes back as soon as the bytes
  left memory. Were it tied to the stream's batch, many streams each holding a
  sub-batch remainder could together hold the whole connection window, and every
  stream would stop (64 streams x 256 KiB = the default 16 MiB).
* **Local write buffers report every drain.** Local sockets use a write-buffer high-water
  mark of 0, so any byte the transport keeps (a partial send, or uvloop's queued
  write) means ``pause_writing`` and its drain means ``resume_writing``, where the
  withheld credit goes back. Without that call, credit for bytes that drained
  silently would only return with the stream's next DATA, which never comes once the
  sender is out of credit.
* **One writer task, two lanes.** Control frames (WINDOW, OPEN*, FIN-less resets,
  PING/PONG, GOAWAY) go first; DATA is chosen by deficit round-robin over streams that
  have bytes and credit, with a quantum of one maximum frame, so a bulk download
  cannot starve an interactive page (snitun#352).
* **Write in the callback when the link is free.** When the writer task is idle and the
  channel is a ``DirectBinaryChannel`` that is writable, ready frames are written in the
  callback that produced them (``flush``): no task wake-up, no wait behind the rest of
  the loop iteration. The writer task only takes over when the link pushes back.
* **Local sockets are asyncio Protocols** so back-pressure is ``pause_reading`` /
  ``pause_writing`` without extra buffering tasks: a stream costs no task while idle.

A protocol violation by the peer (oversized frame, window overflow, unknown stream,
OPEN from the wrong side) fails the whole session: GOAWAY is sent, every stream is
reset, and the owner is told through ``on_protocol_error`` (the gateway audits it).
"""

from __future__ import annotations

import asyncio
import collections
import enum
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final, Protocol, cast

from clgwd.channel import BinaryChannel, DirectBinaryChannel, LinkDown, PathAwareChannel
from clgwd.tasks import wait_at_most
from clgwd.tunnel import wire
from clgwd.tunnel.wire import ErrorCode, Frame, FrameType, ProtocolError

_LOGGER = logging.getLogger(__name__)

READ_HIGH_WATER: Final = 256 * 1024
"""Pause reading a local socket when this many bytes wait for credit or the writer."""
READ_LOW_WATER: Final = 64 * 1024
MAX_CONTROL_BACKLOG: Final = 8192
"""Control frames queued for a peer that does not read them; more means it floods us
(PINGs, OPENs) faster than it drains our answers, and the session fails instead of
queueing without bound."""
RATE_INTERVAL: Final = 0.02
"""Seconds over which the receive rate is sampled for the shared window."""
ACTIVE_WITHIN: Final = 0.2
"""A stream that moved data this recently (seconds) is active; idle ones (an iperf3
control connection, a browser's kept-alive sockets) do not count."""
FLUSH_BUDGET: Final = 16
"""Frames written synchronously in one callback before the rest goes to the writer task
(bounds the time one callback holds the event loop)."""


class Role(enum.Enum):
    GATEWAY = "gateway"
    CLOUD = "cloud"


class StreamState(enum.Enum):
    """Lifecycle of one stream; changed only in ``Stream._set_state``."""

    OPENING = "opening"
    OPEN = "open"
    LOCAL_DONE = "local_done"
    """We sent FIN; the peer may still send."""
    REMOTE_DONE = "remote_done"
    """The peer sent FIN; we may still send."""
    CLOSED = "closed"


class SessionState(enum.Enum):
    ACTIVE = "active"
    FAILED = "failed"
    """The peer broke the protocol; GOAWAY sent, every frame is now ignored."""
    CLOSED = "closed"


class TaskOwner(Protocol):
    """Anything that owns tasks (``asyncio.TaskGroup``); the session never creates bare ones."""

    def create_task(self, coro: Coroutine[Any, Any, Any], *,
                    name: str | None = None) -> asyncio.Task[Any]: ...


@dataclass(frozen=True)
class SessionLimits:
    """Window sizes and limits; both ends may use different values."""

    stream_window: int = 1024 * 1024
    connection_window: int = 16 * 1024 * 1024
    max_streams: int = 256
    max_open_rate: float = 200.0
    """OPENs per second accepted from the peer (token bucket); beyond it is a flood."""
    open_burst: int = 400
    shared_window_floor: int = 32 * 1024
    """Least stream credit while streams share the link (see ``shared_window``)."""


def shared_window(receive_rate: float, min_rtt: float | None, limits: SessionLimits) -> int:
    """Stream credit while a bulk stream shares the link with an interactive one:
    twice the link's bandwidth-delay product (receive rate x the kernel's smallest
    RTT), within [``shared_window_floor``, ``stream_window``].

    Why: credit beyond what keeps the link busy only parks data in the kernel queues,
    FIFO, where an interactive stream's next frame waits behind it (on loopback a 1 MiB
    window cost ~2 ms per request under one bulk download). Twice the product keeps a
    window-limited stream growing (rate follows window / RTT, so the cap doubles per
    round trip while the path has room), and on a WAN link it comes out at or above
    the configured window. Without an RTT the configured window stands.
    """
    if min_rtt is None:
        return limits.stream_window
    wanted = int(2 * receive_rate * min_rtt)
    return max(limits.shared_window_floor, min(limits.stream_window, wanted))


DEFAULT_LIMITS: Final = SessionLimits()


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


OpenHandler = Callable[["Session", Stream, wire.OpenRequest], None]
CloseHandler = Callable[["Session", Stream, StreamClosed], None]
ErrorHandler = Callable[["Session", ProtocolError], None]
RefusedHandler = Callable[["Session", int, wire.OpenRequest, str], None]


class Session:
    """The tunnel protocol over one link connection (both roles)."""

    def __init__(
        self,
        channel: BinaryChannel,
        role: Role,
        owner: TaskOwner,
        *,
        limits: SessionLimits = DEFAULT_LIMITS,
        on_open: OpenHandler | None = None,
        on_stream_closed: CloseHandler | None = None,
        on_protocol_error: ErrorHandler | None = None,
        on_refused: RefusedHandler | None = None,
        name: str = "tunnel",
    ) -> None:
        self.channel = channel
        self.role = role
        self.limits = limits
        self.name = name
        self.state = SessionState.ACTIVE
        self.streams: dict[int, Stream] = {}
        self.goaway_received = False
        self._owner = owner
        self._on_open = on_open
        self._on_closed = on_stream_closed
        self._on_error = on_protocol_error
        self._on_refused = on_refused
        self._control: collections.deque[bytes] = collections.deque()
        self._ready: collections.deque[Stream] = collections.deque()
        self._wake = asyncio.Event()
        self._drained = asyncio.Event()
        self._direct = channel if isinstance(channel, DirectBinaryChannel) else None
        self._path_min_rtt = (channel.path_min_rtt if isinstance(channel, PathAwareChannel)
                              else None)
        self._rate_bytes = 0
        self._rate_since = time.monotonic()
        self._receive_rate = 0.0
        """Bytes per second of DATA received: the larger of the last sample and half
        the previous figure (a decaying maximum)."""
        self._window_cap = limits.stream_window
        """Stream credit is returned up to this: ``shared_window`` while a bulk stream
        shares the link with an interactive one; otherwise it doubles each sample back
        to ``stream_window``, so a bulk stream that slowed for one sample never gets a
        whole window back at once (a credit burst queues ahead of the next request)."""
        self._writer_idle = False
        self._flush_scheduled = False
        self._loop = asyncio.get_running_loop()
        self._conn_send_credit = wire.INITIAL_CONNECTION_WINDOW
        self._conn_recv_remaining = wire.INITIAL_CONNECTION_WINDOW
        self._conn_unreturned = 0
        self._last_peer_stream = 0
        self._next_local_stream = 1
        self._pings: dict[int, asyncio.Future[float]] = {}
        self._writer: asyncio.Task[None] | None = None
        self._open_tokens = float(limits.open_burst)
        self._open_refill = time.monotonic()
        self.frames_sent = 0

    # -- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Grant the configured connection window and start the writer task."""
        extra = self.limits.connection_window - wire.INITIAL_CONNECTION_WINDOW
        if extra > 0:
            self._conn_recv_remaining += extra
            self._send_control(wire.encode_window(0, extra))
        self._writer = self._owner.create_task(self._write_loop(),
                                               name=f"clgwd[{self.name}].writer")

    def close(self, reason: str, code: ErrorCode = ErrorCode.CANCEL) -> None:
        """The connection is gone (or we are stopping): end every stream locally."""
        if self.state is SessionState.CLOSED:
            return
        self.state = SessionState.CLOSED
        for stream in list(self.streams.values()):
            self.close_stream(stream, reason, code, send_rst=False)
        for fut in self._pings.values():
            fut.cancel()
        if self._writer is not None:
            self._writer.cancel()

    async def aclose(self, reason: str, code: ErrorCode = ErrorCode.SHUTDOWN) -> None:
        """Orderly stop while the link is up: RST every stream, GOAWAY, flush, close."""
        if self.state is SessionState.ACTIVE:
            for stream in list(self.streams.values()):
                self.close_stream(stream, reason, code, send_rst=True)
            self._send_control(wire.encode_goaway(self._last_peer_stream, code))
            self._drained.clear()
            self._wake.set()
            await wait_at_most(self._drained.wait(), 1.0)
        self.close(reason, code)

    # -- inbound ---------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Handle one binary message from the peer; never blocks."""
        if self.state is not SessionState.ACTIVE:
            return
        try:
            frame = wire.decode(data)
            self._dispatch(frame)
        except ProtocolError as err:
            self.fail(err)
        self.flush()

    def fail(self, err: ProtocolError) -> None:
        """Protocol violation: GOAWAY, reset all streams, report, ignore further frames."""
        if self.state is not SessionState.ACTIVE:
            return
        _LOGGER.warning("%s: protocol error from the %s: %s", self.name,
                        "cloud" if self.role is Role.GATEWAY else "gateway", err.message)
        self.state = SessionState.FAILED
        for stream in list(self.streams.values()):
            self.close_stream(stream, f"session failed: {err.message}", err.code, send_rst=False)
        self._control.clear()
        self._ready.clear()
        self._send_control(wire.encode_goaway(self._last_peer_stream, err.code))
        if self._on_error is not None:
            self._on_error(self, err)

    def _dispatch(self, frame: Frame) -> None:
        ftype = frame.type
        if ftype is FrameType.DATA:
            self._on_data(frame)
        elif ftype is FrameType.WINDOW:
            self._on_window(frame)
        elif ftype is FrameType.OPEN:
            self._on_open_frame(frame)
        elif ftype is FrameType.OPEN_OK or ftype is FrameType.OPEN_ERR:
            self._on_open_reply(frame)
        elif ftype is FrameType.FIN:
            stream = self._stream_for(frame)
            if stream is not None:
                stream._fin_received()
        elif ftype is FrameType.RST:
            self._on_rst(frame)
        elif ftype is FrameType.PING:
            self._send_control(wire.encode_ping(wire.parse_ping(frame), pong=True))
        elif ftype is FrameType.PONG:
            fut = self._pings.pop(wire.parse_ping(frame), None)
            if fut is not None and not fut.done():
                fut.set_result(time.monotonic())
        elif ftype is FrameType.GOAWAY:
            last, code, _ = wire.parse_goaway(frame)
            _LOGGER.info("%s: peer sent GOAWAY (%s, last stream %d)", self.name, code.name, last)
            self.goaway_received = True

    def _stream_for(self, frame: Frame) -> Stream | None:
        """The live stream a frame names; None if it was closed; error if it never existed."""
        sid = frame.stream_id
        stream = self.streams.get(sid)
        if stream is not None:
            return stream
        if sid == 0 or not self._id_was_used(sid):
            raise ProtocolError(ErrorCode.PROTOCOL_ERROR,
                                f"{frame.type.name} for unknown stream {sid}")
        return None

    def _id_was_used(self, sid: int) -> bool:
        if sid % 2 == 1:  # cloud-opened ids
            if self.role is Role.GATEWAY:
                return sid <= self._last_peer_stream
            return sid < self._next_local_stream
        return False

    def _on_data(self, frame: Frame) -> None:
        size = len(frame.body)
        self._conn_recv_remaining -= size
        if self._conn_recv_remaining < 0:
            raise ProtocolError(ErrorCode.FLOW_CONTROL_ERROR,
                                "peer overran the connection window")
        stream = self._stream_for(frame)
        if stream is None:  # data racing a reset: drop it, but give the credit back
            self._give_connection_credit(size)
            return
        self._rate_bytes += size
        stream.sample_bytes += size
        stream.recv_remaining -= size
        if stream.recv_remaining < 0:
            raise ProtocolError(ErrorCode.FLOW_CONTROL_ERROR,
                                f"peer overran the window of stream {stream.id}")
        if stream.state not in (StreamState.OPEN, StreamState.LOCAL_DONE):
            self.close_stream(stream, f"DATA in state {stream.state.value}",
                              ErrorCode.STREAM_CLOSED, send_rst=True)
            self._give_connection_credit(size)
            return
        assert stream.transport is not None
        stream.transport.write(frame.body)
        stream.bytes_from_peer += size
        stream.unreturned += size
        stream.conn_held += size
        stream.last_activity = time.monotonic()
        self.return_credit(stream, force=False)

    def _on_window(self, frame: Frame) -> None:
        increment = wire.parse_u32(frame)
        if increment == 0:
            raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "WINDOW increment of 0")
        if frame.stream_id == 0:
            self._conn_send_credit += increment
            if self._conn_send_credit > wire.MAX_WINDOW:
                raise ProtocolError(ErrorCode.FLOW_CONTROL_ERROR, "connection window overflow")
            self._kick()
            return
        stream = self._stream_for(frame)
        if stream is None:
            return
        stream.send_credit += increment
        if stream.send_credit > wire.MAX_WINDOW:
            raise ProtocolError(ErrorCode.FLOW_CONTROL_ERROR,
                                f"window overflow on stream {stream.id}")
        self.mark_ready(stream)

    def _on_open_frame(self, frame: Frame) -> None:
        sid = frame.stream_id
        if self.role is Role.CLOUD:
            raise ProtocolError(ErrorCode.PROTOCOL_ERROR, "the gateway may not open streams")
        if sid % 2 == 0 or sid <= self._last_peer_stream:
            raise ProtocolError(ErrorCode.PROTOCOL_ERROR,
                                f"OPEN with stream id {sid} (must be odd and increasing)")
        self._take_open_token()
        request = wire.OpenRequest.parse(frame)
        self._last_peer_stream = sid
        refusal = None
        if self.goaway_received:
            refusal = (ErrorCode.REFUSED, "going-away")
        elif len(self.streams) >= self.limits.max_streams:
            refusal = (ErrorCode.LIMIT, "session-stream-limit")
        if refusal is not None:
            self._send_control(wire.encode_open_err(sid, *refusal))
            if self._on_refused is not None:
                self._on_refused(self, sid, request, refusal[1])
            return
        stream = Stream(self, sid, request.window)
        self.streams[sid] = stream
        if self._on_open is None:
            self.refuse(stream, ErrorCode.REFUSED, "not accepting streams")
            return
        self._on_open(self, stream, request)

    def _on_open_reply(self, frame: Frame) -> None:
        if self.role is Role.GATEWAY:
            raise ProtocolError(ErrorCode.PROTOCOL_ERROR,
                                f"{frame.type.name} sent to the gateway, which never opens")
        stream = self._stream_for(frame)
        if stream is None:
            return
        if stream.state is not StreamState.OPENING:
            raise ProtocolError(ErrorCode.PROTOCOL_ERROR, f"second reply for stream {stream.id}")
        if frame.type is FrameType.OPEN_OK:
            window, peer = wire.parse_open_ok(frame)
            stream.send_credit = window
            self._activate(stream)
            if not stream.opened.done():
                stream.opened.set_result(peer)
        else:
            code, reason = wire.parse_open_err(frame)
            stream.transport = None  # the opener keeps its socket to report the refusal
            _fail_open(stream, StreamRefused(code, reason))
            self.close_stream(stream, f"refused: {reason}", code, send_rst=False)

    def _on_rst(self, frame: Frame) -> None:
        code, reason = wire.parse_rst(frame)
        stream = self._stream_for(frame)
        if stream is None:
            return
        if stream.state is StreamState.OPENING and self.role is Role.CLOUD:
            stream.transport = None  # as for OPEN_ERR: the opener reports and closes
        _fail_open(stream, StreamRefused(code, reason or "reset"))
        self.close_stream(stream, f"reset by peer: {code.name} {reason}".strip(), code,
                          send_rst=False)

    # -- stream control used by the owner ---------------------------------------------

    async def open(self, request: wire.OpenRequest, attach: Callable[[Stream], None]) -> Stream:
        """Cloud side: send OPEN and wait for OPEN_OK (raises ``StreamRefused``).

        ``attach`` binds the local socket before the OPEN leaves, so no byte can arrive
        for a stream without somewhere to go. If the gateway refuses, the socket is left
        open for the caller to explain the refusal and close it.
        """
        if self.role is not Role.CLOUD:
            raise RuntimeError("only the cloud opens streams")
        if self.state is not SessionState.ACTIVE or self.goaway_received:
            raise StreamRefused(ErrorCode.REFUSED, "session is not accepting streams")
        sid = self._next_local_stream
        self._next_local_stream += 2
        stream = Stream(self, sid, 0)
        self.streams[sid] = stream
        attach(stream)
        body = wire.OpenRequest(request.tunnel, request.host, request.port, request.ticket,
                                self.limits.stream_window)
        self._send_control(body.encode(sid))
        try:
            await stream.opened
        except asyncio.CancelledError:
            self.close_stream(stream, "open cancelled", ErrorCode.CANCEL, send_rst=True)
            raise
        return stream

    def accept(self, stream: Stream, peer: str) -> None:
        """Gateway side: the local connection exists; tell the cloud and start reading."""
        if stream.closed:
            return
        self._send_control(wire.encode_open_ok(stream.id, self.limits.stream_window, peer))
        self._activate(stream)

    def refuse(self, stream: Stream, code: ErrorCode, reason: str) -> None:
        """Gateway side: answer OPEN_ERR and forget the stream."""
        if stream.closed:
            return
        self._send_control(wire.encode_open_err(stream.id, code, reason))
        self.close_stream(stream, f"refused: {reason}", code, send_rst=False)

    def _activate(self, stream: Stream) -> None:
        stream._set_state(StreamState.OPEN)
        stream.opened_at = time.monotonic()
        transport = stream.transport
        if transport is not None and stream.reading_paused and \
                stream.buffered < READ_HIGH_WATER:
            stream.reading_paused = False
            transport.resume_reading()
        self.mark_ready(stream)

    def close_stream(self, stream: Stream, reason: str, code: ErrorCode, *,
                     send_rst: bool) -> None:
        """End a stream now: optional RST to the peer, close or abort the local socket."""
        if stream.closed:
            return
        graceful = code is ErrorCode.NO_ERROR
        stream._set_state(StreamState.CLOSED)
        self.streams.pop(stream.id, None)
        if send_rst and self.state is SessionState.ACTIVE:
            self._send_control(wire.encode_rst(stream.id, code, reason[:200]))
        if stream.transport is not None:
            if graceful:
                stream.transport.close()
            else:
                stream.transport.abort()
        if stream.conn_held:
            self._give_connection_credit(stream.conn_held)
            stream.conn_held = 0
        stream.unreturned = 0
        stream.chunks.clear()
        stream.buffered = 0
        _fail_open(stream, StreamRefused(code, reason))
        if self._on_closed is not None:
            self._on_closed(self, stream, StreamClosed(
                stream.id, reason, code, stream.bytes_from_peer, stream.bytes_to_peer,
                time.monotonic() - stream.opened_at))

    # -- credit --------------------------------------------------------------------------

    def return_credit(self, stream: Stream, *, force: bool) -> None:
        """Give back credit for bytes that left our memory: connection credit at once,
        stream credit batched (a quarter window, or ``force``) to cut WINDOW chatter."""
        if stream.closed or (stream.conn_held == 0 and stream.unreturned == 0):
            return
        transport = stream.transport
        # Bytes still queued in the local socket's buffer are not ours to re-grant yet.
        in_memory = transport.get_write_buffer_size() if transport else 0
        left = stream.conn_held - in_memory
        if left > 0:
            stream.conn_held -= left
            self._give_connection_credit(left)
        window = self._credit_window()
        # Never more outstanding credit than ``window`` (smaller while streams share).
        pending = min(stream.unreturned - in_memory, window - stream.recv_remaining)
        batching = stream.writing_paused or pending < window // 4
        if pending <= 0 or (batching and not force):
            return
        stream.unreturned -= pending
        stream.recv_remaining += pending
        if stream.state in (StreamState.OPEN, StreamState.LOCAL_DONE):
            self._send_control(wire.encode_window(stream.id, pending))

    def _credit_window(self) -> int:
        """The stream window credit is returned up to (``_window_cap``), updated once
        per rate sample (one ``getsockopt`` at most)."""
        now = time.monotonic()
        elapsed = now - self._rate_since
        if elapsed >= RATE_INTERVAL:
            self._receive_rate = max(self._rate_bytes / elapsed, self._receive_rate / 2)
            self._rate_bytes = 0
            self._rate_since = now
            limit = self.limits.stream_window
            if self._path_min_rtt is None:
                self._window_cap = limit
            elif self._bulk_beside_interactive(now, elapsed):
                self._window_cap = shared_window(self._receive_rate, self._path_min_rtt(),
                                                 self.limits)
            else:
                self._window_cap = min(limit, 2 * self._window_cap)
        return self._window_cap

    def _bulk_beside_interactive(self, now: float, elapsed: float) -> bool:
        """True when a bulk stream (it moved at least a floor's worth of DATA, either
        way, per sample interval) shares the link with another active stream: the case
        where queued bulk data delays someone. Bulk streams among themselves (downloads,
        uploads) keep full windows: nobody to protect, and small windows cost them
        throughput. Resets each stream's sample."""
        bulk_bytes = self.limits.shared_window_floor * elapsed / RATE_INTERVAL
        since = now - ACTIVE_WITHIN
        bulk = interactive = 0
        for stream in self.streams.values():
            if stream.sample_bytes >= bulk_bytes:
                bulk += 1
            elif stream.last_activity >= since:
                interactive += 1
            stream.sample_bytes = 0
        return bulk > 0 and interactive > 0

    def _give_connection_credit(self, size: int) -> None:
        self._conn_unreturned += size
        if self._conn_unreturned >= self.limits.connection_window // 4 or \
                self._conn_unreturned >= 2 * self.limits.stream_window:
            increment = self._conn_unreturned
            self._conn_unreturned = 0
            self._conn_recv_remaining += increment
            self._send_control(wire.encode_window(0, increment))

    # -- outbound: the writer ------------------------------------------------------------

    def _send_control(self, frame: bytes) -> None:
        if self.state is SessionState.CLOSED:
            return
        if len(self._control) >= MAX_CONTROL_BACKLOG and self.state is SessionState.ACTIVE:
            self.fail(ProtocolError(ErrorCode.LIMIT, "peer does not read our control frames"))
            return
        self._control.append(frame)
        self._kick()

    def _take_open_token(self) -> None:
        """Token bucket on the peer's OPENs: each costs a ticket check and an audit row."""
        now = time.monotonic()
        limits = self.limits
        self._open_tokens = min(float(limits.open_burst),
                                self._open_tokens + (now - self._open_refill)
                                * limits.max_open_rate)
        self._open_refill = now
        if self._open_tokens < 1.0:
            raise ProtocolError(ErrorCode.LIMIT,
                                f"more than {limits.max_open_rate:.0f} OPENs per second")
        self._open_tokens -= 1.0

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

    async def ping(self) -> float:
        """Round-trip time of a PING through the peer's reader (seconds)."""
        opaque = time.monotonic_ns() & 0xFFFF_FFFF_FFFF_FFFF
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._pings[opaque] = fut
        started = time.monotonic()
        self._send_control(wire.encode_ping(opaque))
        return await fut - started


class StreamRefused(Exception):
    """OPEN_ERR or RST answered our OPEN."""

    def __init__(self, code: ErrorCode, reason: str) -> None:
        super().__init__(f"{code.name}: {reason}")
        self.code = code
        self.reason = reason


def _fail_open(stream: Stream, error: StreamRefused) -> None:
    """Fail a pending open; marked retrieved because the opener may be gone (gateway)."""
    if not stream.opened.done():
        stream.opened.set_exception(error)
        stream.opened.exception()
