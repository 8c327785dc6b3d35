"""The one module of the gateway that imports ``picows`` (optional, ``pip install clgwd[fast]``).

Why: picows parses and masks websocket frames in C and hands them to a callback, where
websockets runs its framing in Python and wakes a task per message. The link's API is
the same as ``clgwd.link.ws`` (``recv``/``send_text``/``send_binary``/``writable``/
``send_binary_nowait``/``close`` and the same errors), so ``clgwd.link.connection`` does not
know which backend it runs on. picows is lower level than websockets, so this module
supplies what websockets did for us: message reassembly and size limit, UTF-8 check of
text, a bounded receive queue that pauses reading while full, write back-pressure and
the close handshake.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import ssl
from collections import deque
from collections.abc import Callable
from typing import Final

from picows import (
    WSCloseCode,
    WSError,
    WSFrame,
    WSHandshakeError,
    WSListener,
    WSMsgType,
    WSTransport,
    ws_connect,
)

from clgwd.link.wsapi import (
    KEEPALIVE_CLOSE,
    USER_AGENT,
    Closed,
    ConnectFailed,
    HandshakeRejected,
    WsSettings,
    connect_failure,
    retry_after,
)
from clgwd.protocol.sockopts import min_rtt, tune_link_socket

_LOGGER = logging.getLogger(__name__)

_NO_STATUS: Final = 1005
"""Close code when the close frame carried none (RFC 6455 section 7.1.5)."""


class PicowsConnection(WSListener):
    """One open websocket on picows; exactly one task may call ``recv``.

    Also the listener picows calls: ``on_ws_frame`` queues complete messages (reading is
    paused while ``max_queue`` are waiting), ``pause_writing``/``resume_writing`` follow
    the transport's write buffer (high-water ``write_limit``, low-water a quarter).
    """

    def __init__(self, settings: WsSettings) -> None:
        self._settings = settings
        self._max_message = settings.max_message_bytes
        self._max_queue = settings.max_queue
        self._low_water = settings.write_limit // 4
        self._keepalive: asyncio.TimerHandle | None = None
        self._transport: WSTransport | None = None
        self._messages: deque[str | bytes] = deque()
        self._reading_paused = False
        self._message_waiter: asyncio.Future[None] | None = None
        self._drained: asyncio.Event = asyncio.Event()
        self._drained.set()
        self._fragments: list[bytes] = []
        self._fragment_type: WSMsgType | None = None
        self._fragment_size = 0
        self._closed: Closed | None = None
        self._binary_sink: Callable[[bytes], None] | None = None

    @property
    def socket_transport(self) -> asyncio.Transport:
        """The asyncio transport under the websocket (socket options, buffer sizes)."""
        if self._transport is None:
            raise Closed(None, "not connected")
        return self._transport.underlying_transport

    # -- picows callbacks (run inside the transport's data_received) -----------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self._transport = transport
        transport.underlying_transport.set_write_buffer_limits(
            high=self._settings.write_limit, low=self._low_water)
        self._schedule_ping()

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.CLOSE:
            self._on_close_frame(transport, frame)
        elif kind is WSMsgType.CONTINUATION:
            self._on_continuation(frame)
        elif kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            self._on_data_frame(kind, frame)
        elif kind is WSMsgType.PONG:
            self._schedule_ping()
        # PING is answered by picows (enable_auto_pong).

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._cancel_keepalive()
        if self._closed is None:
            self._closed = _close_info(transport)
        self._wake_reader()
        self._drained.set()

    def pause_writing(self) -> None:
        self._drained.clear()

    def resume_writing(self) -> None:
        self._drained.set()

    # -- keepalive: timers, not a task (picows' own auto-ping cannot wait longer for the
    # pong than the ping interval, which ``cloud.missed_pongs`` needs) -----------------

    def _schedule_ping(self) -> None:
        """(Re)arm the next ping ``ping_interval`` from now; a pong lands here too."""
        self._cancel_keepalive()
        if self._settings.ping_interval > 0 and self._closed is None:
            self._keepalive = asyncio.get_running_loop().call_later(
                self._settings.ping_interval, self._ping)

    def _ping(self) -> None:
        transport = self._transport
        if transport is None or self._closed is not None or transport.is_close_frame_sent:
            return
        transport.send_ping(os.urandom(4))
        self._keepalive = asyncio.get_running_loop().call_later(
            self._settings.ping_timeout, self._keepalive_expired)

    def _keepalive_expired(self) -> None:
        """No pong within ``ping_timeout``: the path is dead, so do not wait for a close
        handshake the peer will never answer (abort, like websockets after its close
        timeout)."""
        self._keepalive = None
        self._fail(WSCloseCode(KEEPALIVE_CLOSE[0]), KEEPALIVE_CLOSE[1], graceful=False)

    def _cancel_keepalive(self) -> None:
        if self._keepalive is not None:
            self._keepalive.cancel()
            self._keepalive = None

    # -- receive side --------------------------------------------------------------

    def _on_data_frame(self, kind: WSMsgType, frame: WSFrame) -> None:
        if frame.rsv1 or frame.rsv2 or frame.rsv3:
            self._fail(WSCloseCode.PROTOCOL_ERROR, "reserved bits set (no extension agreed)")
            return
        if self._fragment_type is not None:
            self._fail(WSCloseCode.PROTOCOL_ERROR, "new message inside a fragmented one")
            return
        if frame.fin:
            self._deliver(kind, frame.get_payload_as_bytes())
            return
        self._fragment_type = kind
        self._add_fragment(frame)

    def _on_continuation(self, frame: WSFrame) -> None:
        kind = self._fragment_type
        if kind is None:
            self._fail(WSCloseCode.PROTOCOL_ERROR, "continuation without a message")
            return
        if not self._add_fragment(frame) or not frame.fin:
            return
        payload = b"".join(self._fragments)
        self._fragments, self._fragment_type, self._fragment_size = [], None, 0
        self._deliver(kind, payload)

    def _add_fragment(self, frame: WSFrame) -> bool:
        self._fragment_size += frame.payload_size
        if self._fragment_size > self._max_message:
            self._fail(WSCloseCode.MESSAGE_TOO_BIG,
                       f"message over {self._max_message} bytes")
            return False
        self._fragments.append(frame.get_payload_as_bytes())
        return True

    def _deliver(self, kind: WSMsgType, payload: bytes) -> None:
        if self._closed is not None or (self._transport and self._transport.is_close_frame_sent):
            return
        if len(payload) > self._max_message:
            self._fail(WSCloseCode.MESSAGE_TOO_BIG, f"message over {self._max_message} bytes")
            return
        if kind is WSMsgType.BINARY and self._binary_sink is not None and not self._messages:
            try:
                self._binary_sink(payload)
            except Exception:
                _LOGGER.exception("binary message handler failed; closing the connection")
                self._fail(WSCloseCode.INTERNAL_ERROR, "binary handler error")
            return
        message: str | bytes = payload
        if kind is WSMsgType.TEXT:
            try:
                message = payload.decode()
            except UnicodeDecodeError:
                self._fail(WSCloseCode.INVALID_TEXT, "text message is not valid UTF-8")
                return
        self._messages.append(message)
        if len(self._messages) >= self._max_queue and not self._reading_paused:
            self._set_reading(paused=True)
        self._wake_reader()

    def _on_close_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        """Peer-initiated: echo and record its code. The answer to our own close (ours,
        or picows' on a parser error) is only an echo: ``on_ws_disconnected`` then
        records the frame we sent."""
        if not transport.is_close_frame_sent:
            code = frame.get_close_code().value
            reason = frame.get_close_reason() if frame.payload_size > 2 else ""
            self._closed = Closed(code if code else _NO_STATUS, reason)
            transport.send_close(frame.get_close_code(), frame.get_close_message())
        transport.disconnect()
        self._wake_reader()

    def _fail(self, code: WSCloseCode, reason: str, *, graceful: bool = True) -> None:
        """Failure seen on our side: close with ``code`` and stop delivering."""
        self._closed = Closed(code.value, reason)
        self._cancel_keepalive()
        if self._transport is not None:
            self._transport.send_close(code, reason.encode())
            self._transport.disconnect(graceful=graceful)
        self._wake_reader()
        self._drained.set()

    def set_binary_sink(self, sink: Callable[[bytes], None] | None) -> None:
        """Hand binary messages to ``sink`` in the socket callback that parsed them,
        while no message waits in the queue (so order is kept), instead of waking the
        reader task: one loop iteration less per tunnel frame. ``sink`` must not block;
        if it raises, the connection closes with 1011."""
        self._binary_sink = sink

    def _wake_reader(self) -> None:
        waiter = self._message_waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _set_reading(self, *, paused: bool) -> None:
        transport = self._transport
        if transport is None or transport.is_disconnected:
            return
        self._reading_paused = paused
        underlying = transport.underlying_transport
        if paused:
            underlying.pause_reading()
        else:
            underlying.resume_reading()

    async def recv(self) -> str | bytes:
        """The next message; raises ``Closed`` once the queue is empty and the link gone."""
        while not self._messages:
            if self._closed is not None:
                raise self._closed
            self._message_waiter = asyncio.get_running_loop().create_future()
            try:
                await self._message_waiter
            finally:
                self._message_waiter = None
        message = self._messages.popleft()
        if self._reading_paused and len(self._messages) <= self._max_queue // 4:
            self._set_reading(paused=False)
        return message

    # -- send side -----------------------------------------------------------------

    def _open_transport(self) -> WSTransport:
        transport = self._transport
        if self._closed is not None or transport is None or transport.is_close_frame_sent \
                or transport.is_disconnected:
            raise self._closed or Closed(None, "connection is closing")
        return transport

    def writable(self) -> bool:
        """Open, and the transport's buffer below the low-water mark (see
        ``clgwd.protocol.channel.DirectBinaryChannel``)."""
        transport = self._transport
        return (self._closed is None and transport is not None
                and not transport.is_close_frame_sent and not transport.is_disconnected
                and transport.underlying_transport.get_write_buffer_size() <= self._low_water)

    def path_min_rtt(self) -> float | None:
        transport = self._transport
        if transport is None:
            return None
        return min_rtt(transport.underlying_transport.get_extra_info("socket"))

    def send_binary_nowait(self, data: bytes) -> None:
        """Frame and write ``data`` now (picows writes straight to the socket when the
        transport's buffer is empty)."""
        self._open_transport().send(WSMsgType.BINARY, data)

    async def _send(self, kind: WSMsgType, data: bytes) -> None:
        await self._drained.wait()
        self._open_transport().send(kind, data)

    async def send_text(self, text: str) -> None:
        await self._send(WSMsgType.TEXT, text.encode())

    async def send_binary(self, data: bytes) -> None:
        """Waits while the write buffer is above ``write_limit`` (back-pressure)."""
        await self._send(WSMsgType.BINARY, data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close handshake, bounded by ``close_timeout``; the socket is aborted after it."""
        transport = self._transport
        if transport is None:
            return
        if not transport.is_close_frame_sent:
            transport.send_close(WSCloseCode(code), reason.encode())
        try:
            async with asyncio.timeout(self._settings.close_timeout):
                await transport.wait_disconnected()
        except TimeoutError:
            transport.disconnect(graceful=False)
        except Exception:  # picows re-raises the disconnect cause; closing anyway
            transport.disconnect(graceful=False)
        with contextlib.suppress(Exception):
            await transport.wait_disconnected()


def _close_info(transport: WSTransport) -> Closed:
    """The close frame of whoever started the close handshake: its code says why (the
    other side's frame is only the echo)."""
    handshake = transport.close_handshake
    if handshake is None:
        return Closed(None, "no close frame")
    info = handshake.recv if handshake.recv_then_sent or handshake.sent is None \
        else handshake.sent
    if info is None:
        return Closed(None, "no close frame")
    return Closed(info.code.value or _NO_STATUS, info.reason)


async def open_connection(url: str, ssl_context: ssl.SSLContext | None, subprotocol: str,
                          settings: WsSettings, *,
                          sock: socket.socket | None = None) -> PicowsConnection:
    """Connect once (no redirects, no retries: the link owns the retry policy); over
    ``sock`` when given (a proxy tunnel, ``clgwd.link.proxy``)."""
    try:
        async with asyncio.timeout(settings.open_timeout):
            transport, listener = await ws_connect(
                lambda: PicowsConnection(settings), url, ssl_context=ssl_context,
                websocket_handshake_timeout=settings.open_timeout,
                max_frame_size=settings.max_message_bytes, enable_auto_ping=False,
                socket_factory=None if sock is None else (lambda _url: sock),
                enable_auto_pong=True, max_redirects=0, use_aiofastnet=False,
                extra_headers={"Sec-WebSocket-Protocol": subprotocol,
                               "User-Agent": USER_AGENT})
    except WSHandshakeError as err:
        raise _handshake_error(err) from None
    except OSError as err:  # TCP, TLS, timeout
        raise connect_failure(err, settings.open_timeout) from None
    except WSError as err:
        raise ConnectFailed(f"websocket handshake failed: {err}") from None
    assert isinstance(listener, PicowsConnection)
    tune_link_socket(transport.underlying_transport.get_extra_info("socket"),
                     receive_buffer=settings.receive_buffer)
    if transport.response.headers.get("Sec-WebSocket-Protocol") != subprotocol:
        await listener.close(1002, "subprotocol required")
        raise ConnectFailed(f"server did not accept subprotocol {subprotocol}")
    return listener


def _handshake_error(err: WSHandshakeError) -> HandshakeRejected | ConnectFailed:
    response = err.response
    if response is not None and int(response.status) >= 400:
        return HandshakeRejected(int(response.status),
                                 retry_after(response.headers.get("Retry-After")))
    return ConnectFailed(f"websocket handshake failed: {err}")
