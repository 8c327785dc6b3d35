"""One connected gateway, seen from the cloud: JSON-RPC both ways plus the binary lane.

The refcloud attaches its tunnel mux (``clgwd/refcloud/hub.py``) to every session
after its ``hello``. Other hooks (tests): register a
callback with ``RefCloud.on_session_ready``; it receives each ``GatewaySession`` after
its ``hello``. Call ``session.set_binary_handler(handler)`` to receive the gateway's
binary messages (in order, from the single reader; the handler may await, which
back-pressures the socket) and ``await session.send_binary(data)`` to send (waits for
the write buffer; raises ``SessionClosed`` when the gateway is gone). ``session.closed``
is an ``asyncio.Event`` set when the connection ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from aiohttp import WSMsgType, web

from clgwd.protocol import rpc as p
from clgwd.protocol.sockopts import SocketLike, min_rtt
from clgwd.refcloud.store import PushRejected

if TYPE_CHECKING:
    from clgwd.refcloud.server import RefCloud

_LOGGER = logging.getLogger(__name__)
BinaryHandler = Callable[[bytes], Awaitable[None]]
Tap = Callable[[str, str], None]
HELLO_TIMEOUT: Final = 30.0


class _ReaderDone(Exception):
    """Ends the session's task group so handlers of a closed socket are cancelled."""


class SessionClosed(Exception):
    """The gateway's connection is closed."""


class GatewaySession:
    """The cloud end of one gateway websocket."""

    def __init__(self, cloud: RefCloud, gateway_id: str, ws: web.WebSocketResponse,
                 link_socket: SocketLike | None = None) -> None:
        self.cloud = cloud
        self.gateway_id = gateway_id
        self.ws = ws
        self._link_socket = link_socket
        self.ready = asyncio.Event()
        self.closed = asyncio.Event()
        self.connected_at = time.time()
        self._pending = p.PendingRequests()
        self._binary_handler: BinaryHandler | None = None
        self.binary_dropped = 0
        self._hello_answering = False
        self.attached = asyncio.Event()
        """Set once the answer to ``hello`` is sent and ``session_ready`` has attached the
        binary lane; binary messages that overtake that wait for it instead of being
        dropped (the gateway may send its first tunnel frame right after the answer)."""

    # -- hook for tunnels -------------------------------------------------------------------

    def set_binary_handler(self, handler: BinaryHandler | None) -> None:
        self._binary_handler = handler

    async def send_binary(self, data: bytes) -> None:
        if self.ws.closed:
            raise SessionClosed(self.gateway_id)
        try:
            await self.ws.send_bytes(data)
        except ConnectionError as err:
            raise SessionClosed(self.gateway_id) from err

    def path_min_rtt(self) -> float | None:
        """``clgwd.protocol.channel.PathAwareChannel``: the link socket's smallest RTT."""
        return min_rtt(self._link_socket)

    # -- commands to the gateway ------------------------------------------------------------

    async def call(self, method: str, params: dict[str, Any], limit: float = 30.0) -> Any:
        """Send a request; returns its result or raises RpcFailed / SessionClosed."""
        return await self._pending.call(self._send, method, params, limit)

    async def goaway(self, reconnect_after_ms: int = 0, reason: str = "") -> None:
        await self._send(p.Notification(p.GOAWAY, {"reconnect_after_ms": reconnect_after_ms,
                                                   "reason": reason}))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self.ws.close(code=code, message=reason.encode())

    # -- reader ---------------------------------------------------------------------------------

    async def run(self) -> None:
        """Read until the socket closes, then cancel handlers still running for it."""
        try:
            async with asyncio.TaskGroup() as tg:
                await self._read_all(tg)
        except* _ReaderDone:
            pass
        finally:
            self.closed.set()
            self._pending.fail_all(lambda: SessionClosed(self.gateway_id))

    async def _read_all(self, tg: asyncio.TaskGroup) -> None:
        async for msg in self.ws:
            if msg.type == WSMsgType.TEXT:
                self._on_text(msg.data, tg)
            elif msg.type == WSMsgType.BINARY:
                await self._on_binary(msg.data)
            elif msg.type == WSMsgType.ERROR:
                _LOGGER.info("Gateway %s: websocket error %s", self.gateway_id,
                             self.ws.exception())
                break
        raise _ReaderDone

    async def _on_binary(self, data: bytes) -> None:
        if self._binary_handler is None and self._hello_answering:
            await self.attached.wait()
        if self._binary_handler is None:
            self.binary_dropped += 1
            return
        await self._binary_handler(data)

    def _on_text(self, text: str, tg: asyncio.TaskGroup) -> None:
        self.cloud.record("in", text)
        try:
            message = p.parse(text)
        except p.ProtocolViolation as err:
            tg.create_task(self._send_quietly(p.error_response(err.request_id, err.code,
                                                               err.message)))
            return
        if isinstance(message, p.Request):
            if message.method == p.HELLO and not self.attached.is_set():
                self._hello_answering = True
            tg.create_task(self._answer(message))
        elif isinstance(message, p.Response | p.ErrorResponse):
            self._on_reply(message)

    def _on_reply(self, message: p.Response | p.ErrorResponse) -> None:
        if not self._pending.resolve(message):
            _LOGGER.info("Gateway %s replied to unknown id %r", self.gateway_id, message.id)

    async def _answer(self, request: p.Request) -> None:
        try:
            reply: p.Message = p.Response(request.id, await self._handle(request))
        except p.RpcFailed as err:
            reply = p.ErrorResponse(request.id, err.error)
        try:
            await self._send_quietly(reply)
            if request.method == p.HELLO and isinstance(reply, p.Response):
                # Only now may commands and binary frames flow (protocol.md 4.1, 5).
                self.ready.set()
                await self.cloud.session_ready(self)
        finally:
            if request.method == p.HELLO:
                self._hello_answering = False
                self.attached.set()

    async def _handle(self, request: p.Request) -> Any:
        if request.method == p.HELLO:
            return await self._hello(request.params)
        if not self.ready.is_set():
            raise p.rpc_failed(p.INVALID_REQUEST, "send hello first and wait for its answer",
                               "hello_required")
        if request.method == p.EVENT_PUSH:
            return await self._event_push(request.params)
        if request.method == p.CERT_RENEW:
            return await self.cloud.renew(self.gateway_id, request.params.get("csr"))
        if request.method == p.RELEASE_LATEST:
            return {"release": await self.cloud.releases.latest(
                request.params.get("python"), request.params.get("machine"))}
        raise p.rpc_failed(p.METHOD_NOT_FOUND, f"unknown method {request.method!r}",
                           "unknown_method")

    async def _hello(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("gateway_id") != self.gateway_id:
            raise p.rpc_failed(p.INVALID_PARAMS,
                               "gateway_id does not match the client certificate",
                               "identity_mismatch")
        if params.get("protocol") != p.PROTOCOL_VERSION:
            raise p.rpc_failed(p.INVALID_PARAMS, f"protocol {p.PROTOCOL_VERSION} required",
                               "protocol_unsupported")
        version, caps, epoch = (params.get("version"), params.get("capabilities"),
                                params.get("outbox_epoch"))
        if not isinstance(epoch, str) or not epoch:
            raise p.rpc_failed(p.INVALID_PARAMS, "outbox_epoch must be a non-empty string")
        acked = await self.cloud.store.gateway_online(
            self.gateway_id, version if isinstance(version, str) else "?",
            [c for c in caps if isinstance(c, str)] if isinstance(caps, list) else [], epoch)
        return {"gateway_id": self.gateway_id, "acked_seq": acked, "time": self.cloud.clock()}

    async def _event_push(self, params: dict[str, Any]) -> dict[str, Any]:
        records = params.get("records")
        if not isinstance(records, list) or not records:
            raise p.rpc_failed(p.INVALID_PARAMS, "records must be a non-empty list")
        try:
            acked = await self.cloud.store.apply_push(self.gateway_id, records)
        except PushRejected as err:
            raise p.rpc_failed(p.INVALID_PARAMS, str(err), "bad_records") from None
        return {"acked_seq": acked}

    async def _send(self, message: p.Message) -> None:
        text = p.encode(message)
        self.cloud.record("out", text)
        if self.ws.closed:
            raise SessionClosed(self.gateway_id)
        try:
            await self.ws.send_str(text)
        except ConnectionError as err:
            raise SessionClosed(self.gateway_id) from err

    async def _send_quietly(self, message: p.Message) -> None:
        with contextlib.suppress(SessionClosed):
            await self._send(message)



