"""The one module of the gateway that imports ``websockets``.

It opens a single client connection with every limit explicit (no compression, message
size, queue, write buffer, keepalive) and turns the library's exceptions into our own
small set (``clgwd.link.wsapi``), so the rest of the link never depends on websockets'
API churn; ``clgwd.link.ws_picows`` is the optional faster backend with the same API.
"""

from __future__ import annotations

import asyncio
import socket
import ssl

from websockets.asyncio.client import connect
from websockets.asyncio.connection import Connection
from websockets.exceptions import (
    ConnectionClosed,
    InvalidHandshake,
    InvalidStatus,
    NegotiationError,
)
from websockets.protocol import State
from websockets.typing import Subprotocol

from clgwd.link.wsapi import (
    USER_AGENT,
    Closed,
    ConnectFailed,
    HandshakeRejected,
    WsSettings,
    connect_failure,
    retry_after,
)
from clgwd.protocol.sockopts import min_rtt, tune_link_socket

__all__ = ["Closed", "ConnectFailed", "HandshakeRejected", "WsConnection", "WsSettings",
           "open_connection"]


class WsConnection:
    """One open websocket; exactly one task may call ``recv``.

    Also used by the benchmark's carrier for the server end (the same API).
    """

    def __init__(self, conn: Connection, write_limit: int = 64 << 10,
                 close_timeout: float = 5.0) -> None:
        self._conn = conn
        self._low_water = write_limit // 4  # websockets' default low-water mark
        self._close_timeout = close_timeout

    @property
    def socket_transport(self) -> asyncio.Transport:
        """The asyncio transport under the websocket (socket options, buffer sizes)."""
        return self._conn.transport

    def writable(self) -> bool:
        """Open, and the transport's buffer below the low-water mark (see
        ``clgwd.protocol.channel.DirectBinaryChannel``)."""
        conn = self._conn
        return (conn.protocol.state is State.OPEN and not conn.transport.is_closing()
                and conn.transport.get_write_buffer_size() <= self._low_water)

    def path_min_rtt(self) -> float | None:
        return min_rtt(self._conn.transport.get_extra_info("socket"))

    def send_binary_nowait(self, data: bytes) -> None:
        """Frame ``data`` and write it to the transport now (websockets' sans-I/O API:
        the same frames ``send`` would write, without its task switch)."""
        protocol = self._conn.protocol
        protocol.send_binary(data)
        transport = self._conn.transport
        for chunk in protocol.data_to_send():
            if chunk:
                transport.write(chunk)

    async def recv(self) -> str | bytes:
        try:
            return await self._conn.recv()
        except ConnectionClosed as err:
            raise _closed(err) from None

    async def send_text(self, text: str) -> None:
        try:
            await self._conn.send(text, text=True)
        except ConnectionClosed as err:
            raise _closed(err) from None

    async def send_binary(self, data: bytes) -> None:
        """Waits while the write buffer is above ``write_limit`` (back-pressure)."""
        try:
            await self._conn.send(data, text=False)
        except ConnectionClosed as err:
            raise _closed(err) from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close handshake, bounded by twice ``close_timeout``; then the socket is aborted.

        Why the bound: websockets' ``close`` first waits for the write buffer to drain,
        without a limit, so a peer that stopped reading would hold it forever. Twice:
        websockets bounds the handshake itself by ``close_timeout``; this outer bound
        only has to catch the drain, never cut a handshake that is on time."""
        try:
            async with asyncio.timeout(2 * self._close_timeout):
                await self._conn.close(code, reason)
        except TimeoutError:
            self._conn.transport.abort()



def _closed(err: ConnectionClosed) -> Closed:
    frame = err.rcvd or err.sent
    return Closed(frame.code if frame else None, frame.reason if frame else "no close frame")


async def open_connection(url: str, ssl_context: ssl.SSLContext | None, subprotocol: str,
                          settings: WsSettings, *,
                          sock: socket.socket | None = None) -> WsConnection:
    """Connect once (no library-level retries: the link owns the retry policy); over
    ``sock`` when given (a proxy tunnel, ``clgwd.link.proxy``)."""
    try:
        conn = await connect(
            url, ssl=ssl_context, sock=sock, subprotocols=[Subprotocol(subprotocol)],
            compression=None, proxy=None, user_agent_header=USER_AGENT,
            open_timeout=settings.open_timeout, ping_interval=settings.ping_interval,
            ping_timeout=settings.ping_timeout, close_timeout=settings.close_timeout,
            max_size=settings.max_message_bytes, max_queue=settings.max_queue,
            write_limit=settings.write_limit,
        )
    except InvalidStatus as err:
        raise HandshakeRejected(err.response.status_code,
                                retry_after(err.response.headers.get("Retry-After"))) from None
    except (NegotiationError, InvalidHandshake) as err:
        raise ConnectFailed(f"websocket handshake failed: {err}") from None
    except OSError as err:  # TCP, TLS, timeout
        raise connect_failure(err, settings.open_timeout) from None
    except ConnectionClosed as err:
        raise ConnectFailed(f"closed during handshake: {_closed(err)}") from None
    tune_link_socket(conn.transport.get_extra_info("socket"),
                     receive_buffer=settings.receive_buffer)
    if conn.subprotocol != subprotocol:
        await conn.close(1002, "subprotocol required")
        raise ConnectFailed(f"server did not accept subprotocol {subprotocol}")
    return WsConnection(conn, settings.write_limit, settings.close_timeout)
