"""One multiplexed tunnel session over one link connection: the inbound side and streams.

Both ends run this same engine (the gateway as ``Role.GATEWAY``, the reference cloud as
``Role.CLOUD``); only the cloud may open streams. The engine is three layers, each with
the reasons for its shape in its docstring: ``clgwd.protocol.scheduler`` (control lane,
deficit round-robin writer), ``clgwd.protocol.credit`` (the credit we grant and the
shared window), this module (frames from the peer, stream opening and closing), and
``clgwd.protocol.streams`` (one stream per local socket).

A protocol violation by the peer (oversized frame, window overflow, unknown stream,
OPEN from the wrong side) fails the whole session: GOAWAY is sent, every stream is
reset, and the owner is told through ``on_protocol_error`` (the gateway audits it).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from clgwd.protocol import wire
from clgwd.protocol.channel import BinaryChannel
from clgwd.protocol.credit import DEFAULT_LIMITS, CreditLedger, SessionLimits
from clgwd.protocol.scheduler import SessionState
from clgwd.protocol.streams import (
    READ_HIGH_WATER,
    Stream,
    StreamClosed,
    StreamRefused,
    StreamState,
    fail_open,
)
from clgwd.protocol.wire import ErrorCode, Frame, FrameType, ProtocolError
from clgwd.tasks import wait_at_most

_LOGGER = logging.getLogger(__name__)


class Role(enum.Enum):
    GATEWAY = "gateway"
    CLOUD = "cloud"



class TaskOwner(Protocol):
    """Anything that owns tasks (``asyncio.TaskGroup``); the session never creates bare ones."""

    def create_task(self, coro: Coroutine[Any, Any, Any], *,
                    name: str | None = None) -> asyncio.Task[Any]: ...



OpenHandler = Callable[["Session", Stream, wire.OpenRequest], None]
CloseHandler = Callable[["Session", Stream, StreamClosed], None]
ErrorHandler = Callable[["Session", ProtocolError], None]
RefusedHandler = Callable[["Session", int, wire.OpenRequest, str], None]



class Session(CreditLedger):
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
        super().__init__(channel, name, limits)
        self.role = role
        self.goaway_received = False
        self._owner = owner
        self._on_open = on_open
        self._on_closed = on_stream_closed
        self._on_error = on_protocol_error
        self._on_refused = on_refused
        self._last_peer_stream = 0
        self._next_local_stream = 1
        self._pings: dict[int, asyncio.Future[float]] = {}
        self._open_tokens = float(limits.open_burst)
        self._open_refill = time.monotonic()

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
            fail_open(stream, StreamRefused(code, reason))
            self.close_stream(stream, f"refused: {reason}", code, send_rst=False)

    def _on_rst(self, frame: Frame) -> None:
        code, reason = wire.parse_rst(frame)
        stream = self._stream_for(frame)
        if stream is None:
            return
        if stream.state is StreamState.OPENING and self.role is Role.CLOUD:
            stream.transport = None  # as for OPEN_ERR: the opener reports and closes
        fail_open(stream, StreamRefused(code, reason or "reset"))
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
        fail_open(stream, StreamRefused(code, reason))
        if self._on_closed is not None:
            self._on_closed(self, stream, StreamClosed(
                stream.id, reason, code, stream.bytes_from_peer, stream.bytes_to_peer,
                time.monotonic() - stream.opened_at))

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

    async def ping(self) -> float:
        """Round-trip time of a PING through the peer's reader (seconds)."""
        opaque = time.monotonic_ns() & 0xFFFF_FFFF_FFFF_FFFF
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._pings[opaque] = fut
        started = time.monotonic()
        self._send_control(wire.encode_ping(opaque))
        return await fut - started

