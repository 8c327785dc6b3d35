"""Reference cloud side of tunnels: ticket authority, cloud mux, "Launch" proxy.

Imports only the protocol modules (``clgwd.protocol.wire``, ``clgwd.protocol.session``, the
``clgwd.protocol.channel`` contract) and generic libraries, never gateway internals, so it
exercises exactly what a third-party cloud would implement.

Plugging into the refcloud server (one object per connected gateway with
``send_binary(data)`` and a registrable binary-message handler)::

    tunnels = CloudTunnels(owner=server_task_group, name=f"refcloud.{gateway_id}")
    await tunnels.on_link_up(gateway_session)        # anything with send_binary()
    gateway_session.binary_handler = tunnels.on_binary
    ...
    await tunnels.on_link_down()                     # when that websocket closes

A ``LaunchProxy`` then listens on 127.0.0.1 and carries each accepted connection
through a new stream (with a fresh ticket) to the LAN target: opening its URL in a
browser shows the LAN web UI through the gateway. By default it is a byte-level proxy,
so HTTPS stays end-to-end between the browser and the LAN host; with
``rewrite_host=True`` (plain HTTP targets) it replaces the ``Host`` header of every
request with the target's, following request boundaries on kept-alive connections
(``clgwd.refcloud.httprewrite``), so one connection is one stream and one ticket.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Self, cast

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from clgwd.protocol.channel import BinaryChannel
from clgwd.protocol.credit import DEFAULT_LIMITS, SessionLimits
from clgwd.protocol.session import Role, Session, TaskOwner
from clgwd.protocol.streams import Stream, StreamProtocol, StreamRefused
from clgwd.protocol.wire import (
    MAX_TICKET_LIFETIME,
    ErrorCode,
    OpenRequest,
    ProtocolError,
    TicketClaims,
    pack_ticket,
)
from clgwd.refcloud.httprewrite import BadRequest, RequestRewriter

_LOGGER = logging.getLogger(__name__)


class TicketAuthority:
    """Signs single-use stream tickets with the tunnel-authority Ed25519 key."""

    def __init__(self, private_key: Ed25519PrivateKey | None = None) -> None:
        self._key = private_key or Ed25519PrivateKey.generate()

    @classmethod
    def load_or_create(cls, path: Path) -> TicketAuthority:
        """The authority whose key is stored at ``path`` (PKCS#8 PEM, 0600), created on
        first use so gateways enrolled earlier keep verifying after a restart.
        Blocking file I/O: call through ``asyncio.to_thread``."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            key = Ed25519PrivateKey.generate()
            pem = key.private_bytes(serialization.Encoding.PEM,
                                    serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                os.write(fd, pem)
                os.fsync(fd)
            finally:
                os.close(fd)
            return cls(key)
        loaded = serialization.load_pem_private_key(data, password=None)
        if not isinstance(loaded, Ed25519PrivateKey):
            raise TypeError(f"{path} is not an Ed25519 private key")
        return cls(loaded)

    @property
    def public_key_b64(self) -> str:
        """The value for the gateway's ``tunnel.authority_public_key``."""
        raw = self._key.public_key().public_bytes(serialization.Encoding.Raw,
                                                  serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    def issue(self, *, gateway: str, tunnel: str, host: str, port: int, admin: str,
              lifetime: float = 30.0, now: float | None = None, jti: str | None = None) -> str:
        """A ticket for one stream; ``lifetime`` is capped at the protocol's 60 s."""
        issued = time.time() if now is None else now
        claims = TicketClaims(gateway=gateway, tunnel=tunnel, host=host, port=port,
                              admin=admin, jti=jti or uuid.uuid4().hex, iat=issued,
                              exp=issued + min(lifetime, MAX_TICKET_LIFETIME))
        return self.sign(claims)

    def sign(self, claims: TicketClaims) -> str:
        raw = claims.canonical()
        return pack_ticket(raw, self._key.sign(raw))


class CloudTunnels:
    """The cloud end of one gateway's tunnel session (a ``BinaryEndpoint``)."""

    def __init__(self, owner: TaskOwner, *, limits: SessionLimits = DEFAULT_LIMITS,
                 name: str = "refcloud.tunnels") -> None:
        self._owner = owner
        self.limits = limits
        self.name = name
        self.session: Session | None = None
        self.protocol_errors: list[ProtocolError] = []
        self._up = asyncio.Event()

    async def on_link_up(self, channel: BinaryChannel) -> None:
        if self.session is not None:
            self.session.close("link replaced")
        self.session = Session(channel, Role.CLOUD, self._owner, limits=self.limits,
                               on_protocol_error=self._on_error, name=self.name)
        self.session.start()
        self._up.set()

    async def on_binary(self, data: bytes) -> None:
        self.on_binary_nowait(data)

    def on_binary_nowait(self, data: bytes) -> None:
        """``DirectBinaryEndpoint``: a picows carrier feeds frames from its callback."""
        if self.session is not None:
            self.session.feed(data)

    async def attach(self, channel: BinaryChannel) -> Callable[[bytes], Awaitable[None]]:
        """``on_link_up`` for a new gateway websocket; returns the binary handler for that
        websocket only. Frames still arriving on an older socket (a ``goaway`` drain) go
        to nowhere once it has been replaced instead of into the new session."""
        await self.on_link_up(channel)
        session = self.session

        async def feed(data: bytes) -> None:
            if session is self.session and session is not None:
                session.feed(data)
        return feed

    async def detach(self, channel: BinaryChannel) -> None:
        """``on_link_down`` if ``channel`` is still the current websocket."""
        if self.session is not None and self.session.channel is channel:
            await self.on_link_down()

    async def on_link_down(self) -> None:
        self._up.clear()
        if self.session is not None:
            self.session.close("link down")
            self.session = None

    def _on_error(self, session: Session, err: ProtocolError) -> None:
        self.protocol_errors.append(err)

    async def wait_up(self) -> Session:
        await self._up.wait()
        assert self.session is not None
        return self.session

    async def open(self, transport: asyncio.Transport, request: OpenRequest, *,
                   early: list[bytes] | None = None, early_eof: bool = False,
                   wrap: Callable[[StreamProtocol], asyncio.Protocol] | None = None) -> Stream:
        """Carry an accepted local socket through a new stream (raises StreamRefused).

        ``early``/``early_eof``: what the socket delivered before this call; replayed
        into the stream so it is sent once the gateway accepts. ``wrap`` puts a filter
        in front of the stream's protocol (the HTTP mode's request rewriter).
        """
        session = self.session
        if session is None:
            raise StreamRefused(ErrorCode.REFUSED, "gateway is not connected")

        def attach(stream: Stream) -> None:
            protocol = stream.protocol()
            outer = wrap(protocol) if wrap is not None else protocol
            transport.set_protocol(outer)
            outer.connection_made(transport)
            for data in early or ():
                protocol.data_received(data)
            if early_eof:
                protocol.eof_received()

        return await session.open(request, attach)

    async def close(self) -> None:
        if self.session is not None:
            await self.session.aclose("cloud closing")
            self.session = None


def host_header(host: str, port: int) -> str:
    """The ``Host`` value naming ``host:port`` (port left out for 80, IPv6 bracketed)."""
    name = f"[{host}]" if ":" in host else host
    return name if port == 80 else f"{name}:{port}"


class _RewritingProtocol(asyncio.Protocol):
    """HTTP mode after the stream opened: the request rewriter in front of the stream."""

    def __init__(self, inner: asyncio.Protocol, rewriter: RequestRewriter) -> None:
        self._inner = inner
        self._rewriter = rewriter
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        try:
            pieces = self._rewriter.feed(data)
        except BadRequest as err:
            # Earlier responses may still be on their way: no status line can be
            # inserted now, so the connection ends (the stream is reset).
            _LOGGER.warning("Launch: closing a connection: %s", err)
            assert self._transport is not None
            self._transport.abort()
            return
        for piece in pieces:
            self._inner.data_received(piece)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)


class _ClientProtocol(asyncio.Protocol):
    """An accepted local connection waiting for its stream to open."""

    def __init__(self, proxy: LaunchProxy) -> None:
        self._proxy = proxy
        self._task: asyncio.Task[None] | None = None
        self._transport: asyncio.Transport | None = None
        self.rewriter = (RequestRewriter(proxy.rewrite_host)
                         if proxy.rewrite_host is not None else None)
        """HTTP mode: rewrites every request head; the stream opens after the first."""
        self.early: list[bytes] = []
        """Bytes read before the stream took over (an event loop may deliver some even
        though reading is paused at once); handed to the stream, never dropped."""
        self.early_eof = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop transports are not subclasses
        self._transport = transport
        if self.rewriter is None:
            self._carry()

    @property
    def _awaiting_head(self) -> bool:
        return self.rewriter is not None and self.rewriter.requests == 0

    def _carry(self) -> None:
        assert self._transport is not None
        self._transport.pause_reading()
        self._task = self._proxy.owner.create_task(
            self._proxy.carry(self._transport, self),
            name=f"clgwd[{self._proxy.tunnel}].launch")

    def data_received(self, data: bytes) -> None:
        if self.rewriter is None:
            self.early.append(data)
            return
        try:
            self.early += self.rewriter.feed(data)
        except BadRequest as err:
            self._reject(err.status)
            return
        if self._task is None and self.rewriter.requests:
            self._carry()

    def _reject(self, status: bytes) -> None:
        assert self._transport is not None
        self._transport.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n"
                              b"Connection: close\r\n\r\n")
        self._transport.close()

    def eof_received(self) -> bool:
        self.early_eof = True
        if self._awaiting_head:  # closed before a complete head: nothing worth a stream
            assert self._transport is not None
            self._transport.close()
            return False
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self._task is not None:
            self._task.cancel()


class LaunchProxy:
    """A local listener whose connections go through a tunnel to one LAN host:port."""

    def __init__(self, tunnels: CloudTunnels, authority: TicketAuthority, owner: TaskOwner, *,
                 gateway: str, tunnel: str, host: str, port: int, admin: str,
                 listen_host: str = "127.0.0.1", listen_port: int = 0,
                 http_errors: bool = True, open_timeout: float = 30.0,
                 rewrite_host: bool = False) -> None:
        self.tunnels = tunnels
        self.authority = authority
        self.owner = owner
        self.gateway, self.tunnel, self.host, self.port = gateway, tunnel, host, port
        self.admin = admin
        self.http_errors = http_errors
        self.open_timeout = open_timeout
        self.rewrite_host = host_header(host, port) if rewrite_host else None
        """``Host`` value for HTTP mode, or None for a plain byte forwarder (HTTPS)."""
        self.refusals: list[StreamRefused] = []
        self._listen = (listen_host, listen_port)
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Self:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _ClientProtocol(self), *self._listen)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    @property
    def address(self) -> tuple[str, int]:
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}/"

    async def carry(self, transport: asyncio.Transport, client: _ClientProtocol) -> None:
        """Open a stream for one accepted connection with a fresh ticket."""
        ticket = self.authority.issue(gateway=self.gateway, tunnel=self.tunnel,
                                      host=self.host, port=self.port, admin=self.admin)
        request = OpenRequest(self.tunnel, self.host, self.port, ticket, 0)
        rewriter = client.rewriter
        wrap = (None if rewriter is None
                else lambda inner: _RewritingProtocol(inner, rewriter))
        try:
            async with asyncio.timeout(self.open_timeout):
                await self.tunnels.open(transport, request, early=client.early,
                                        early_eof=client.early_eof, wrap=wrap)
        except TimeoutError:
            err = StreamRefused(ErrorCode.TIMEOUT, "gateway did not answer the OPEN")
            self._refused(transport, err)
        except StreamRefused as err:
            self._refused(transport, err)
        except asyncio.CancelledError:
            transport.abort()
            raise

    def _refused(self, transport: asyncio.Transport, err: StreamRefused) -> None:
        """Tell a browser why (502 with the reason), then close the local connection."""
        self.refusals.append(err)
        _LOGGER.warning("Launch %s: stream refused: %s", self.tunnel, err)
        if self.http_errors and not transport.is_closing():
            body = f"tunnel refused: {err.reason}\n".encode()
            transport.write(b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\n"
                            b"Connection: close\r\nContent-Length: "
                            + str(len(body)).encode() + b"\r\n\r\n" + body)
        transport.close()


__all__ = ["CloudTunnels", "LaunchProxy", "StreamProtocol", "TicketAuthority"]
