"""One connection to the cloud: the single reader, JSON-RPC correlation, the binary lane.

A ``Session`` lives exactly as long as one websocket. Its reader task is the only
caller of ``recv``; text messages are JSON-RPC (requests from the cloud are handled in
their own tasks so a slow command never stalls the reader), binary messages go to the
tunnel endpoint in order. Reconnecting means a new ``Session``; nothing here retries.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final

from clgwd.link.wsapi import BinarySinkConnection, Closed, LinkConnection
from clgwd.protocol import rpc as p
from clgwd.protocol.channel import BinaryEndpoint, DirectBinaryEndpoint, LinkDown

_LOGGER = logging.getLogger(__name__)

MAX_INFLIGHT_COMMANDS: Final = 32

Tap = Callable[[str, str], None]
"""Observer of every text message: ``tap("in"|"out", text)`` (tests record traffic)."""


Dispatcher = Callable[[p.Request], Awaitable[Any]]
"""Handles one cloud request; returns the result or raises ``p.RpcFailed``."""


class Session:
    """A JSON-RPC peer over one websocket; also the ``BinaryChannel`` of that socket."""

    def __init__(self, conn: LinkConnection, dispatcher: Dispatcher,
                 endpoint: BinaryEndpoint | None, *,
                 tap: Tap | None = None, label: str = "cloud") -> None:
        self._conn = conn
        self._dispatch = dispatcher
        self.endpoint = endpoint
        """The tunnel endpoint this connection announces itself to (fixed per session)."""
        self._binary_lane = asyncio.Event()
        self.superseded = False
        """A newer connection owns the tunnel endpoint (goaway drain): binary messages
        still arriving here are dropped, never fed into the new connection's tunnel
        session, where their stream ids would be a protocol error."""
        self.binary_dropped = 0
        self.hello_done = False
        """Set by the reader when the cloud answers ``hello``; binary before that is a
        protocol violation (set here, in message order, not by the waiting task)."""
        self._hello_id: p.RequestId | None = None
        self._tap = tap
        self.label = label
        self._pending = p.PendingRequests()
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.closed = asyncio.Event()
        self.goaway = asyncio.Event()
        self.ended = asyncio.Event()
        """Set on close or goaway: the link stops using this session for new work."""
        self.goaway_after = 0.0
        self.close_reason = ""
        self.unknown_replies = 0

    # -- BinaryChannel --------------------------------------------------------------------

    async def send_binary(self, data: bytes) -> None:
        if self.closed.is_set():
            raise LinkDown("the cloud connection is closed")
        try:
            await self._conn.send_binary(data)
        except Closed as err:
            raise LinkDown(f"the cloud connection closed: {err}") from None

    def writable(self) -> bool:
        return not self.closed.is_set() and self._conn.writable()

    def send_binary_nowait(self, data: bytes) -> None:
        self._conn.send_binary_nowait(data)

    def path_min_rtt(self) -> float | None:
        return self._conn.path_min_rtt()

    # -- requests we make -----------------------------------------------------------------

    async def request(self, method: str, params: dict[str, Any], limit: float) -> Any:
        """Send a request and wait for its result; raises RpcFailed, LinkDown, TimeoutError."""
        return await self._pending.call(self._send, method, params, limit)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        await self._conn.close(code, reason)

    async def drain(self, limit: float) -> None:
        """After a goaway: let commands in flight finish (bounded), then close."""
        try:
            async with asyncio.timeout(limit):
                await self._idle.wait()
        except TimeoutError:
            _LOGGER.warning("%s: %d commands still running after %.0f s of drain; closing",
                            self.label, self._inflight, limit)
        await self._conn.close(1001, "drained after goaway")

    # -- the reader -------------------------------------------------------------------------

    async def run(self) -> None:
        """Read until the connection closes; returns normally then (never raises Closed)."""
        try:
            async with asyncio.TaskGroup() as tg:
                while True:
                    message = await self._conn.recv()
                    if isinstance(message, bytes):
                        await self._on_binary(message)
                    else:
                        self._on_text(message, tg)
        except* Closed as group:
            err = group.exceptions[0]
            assert isinstance(err, Closed)
            self.close_reason = _describe_close(err)
        finally:
            self.closed.set()
            self.ended.set()
            self._pending.fail_all(lambda: LinkDown("the cloud connection closed"))

    def open_binary_lane(self) -> None:
        """Called after ``endpoint.on_link_up(self)`` returned: frames may flow now.

        From here on, a connection that can (picows) hands binary messages to an endpoint
        that can take them synchronously straight from its socket callback."""
        self._binary_lane.set()
        if isinstance(self.endpoint, DirectBinaryEndpoint) and \
                isinstance(self._conn, BinarySinkConnection):
            self._conn.set_binary_sink(self._on_binary_now)

    def _on_binary_now(self, data: bytes) -> None:
        """``_on_binary`` once hello is answered and the lane is open, without the reader
        task. An endpoint failure propagates: the connection logs it and closes with
        1011, as the reader path does, and the tunnel starts over on a new one."""
        endpoint = self._binary_target(len(data))
        if endpoint is not None:
            assert isinstance(endpoint, DirectBinaryEndpoint)  # the sink is set only for one
            endpoint.on_binary_nowait(data)

    def _binary_target(self, size: int) -> BinaryEndpoint | None:
        """Where a binary message goes, or None when it is dropped (both paths)."""
        if self.superseded:
            self.binary_dropped += 1
            _LOGGER.debug("%s: dropped a %d-byte binary message: superseded by a newer "
                          "connection", self.label, size)
            return None
        if self.endpoint is None:
            _LOGGER.debug("%s: dropped a %d-byte binary message: no tunnel endpoint",
                          self.label, size)
        return self.endpoint

    async def _on_binary(self, data: bytes) -> None:
        # The contract promises on_link_up before any on_binary; a frame that races
        # ahead of the supervisor's on_link_up waits here (stalling the reader).
        if not self.hello_done:
            _LOGGER.warning("%s sent a binary message before answering hello; dropped",
                            self.label)
            return
        await self._binary_lane.wait()
        endpoint = self._binary_target(len(data))
        if endpoint is None:
            return
        try:
            await endpoint.on_binary(data)
        except Exception:
            # A tunnel bug must not take the control lane down with it: log it and
            # start over on a fresh connection, which resets the tunnel state.
            _LOGGER.exception("%s: tunnel endpoint failed on a binary message", self.label)
            await self._conn.close(1011, "tunnel endpoint error")

    def _on_text(self, text: str, tg: asyncio.TaskGroup) -> None:
        if self._tap is not None:
            self._tap("in", text)
        try:
            message = p.parse(text)
        except p.ProtocolViolation as err:
            _LOGGER.warning("%s sent an invalid message: %s", self.label, err.message)
            tg.create_task(self._send_quietly(p.error_response(err.request_id, err.code,
                                                               err.message)))
            return
        if isinstance(message, p.Request):
            self._start_command(message, tg)
        elif isinstance(message, p.Notification):
            self._on_notification(message)
        else:
            self._on_reply(message)

    def _start_command(self, request: p.Request, tg: asyncio.TaskGroup) -> None:
        if self._inflight >= MAX_INFLIGHT_COMMANDS:
            tg.create_task(self._send_quietly(p.error_response(
                request.id, p.BUSY, f"more than {MAX_INFLIGHT_COMMANDS} commands in flight",
                "busy")))
            return
        self._inflight += 1
        self._idle.clear()
        tg.create_task(self._run_command(request),
                       name=f"clgwd[link].command.{request.method}")

    async def _run_command(self, request: p.Request) -> None:
        try:
            reply: p.Message
            try:
                reply = p.Response(request.id, await self._dispatch(request))
            except p.RpcFailed as err:
                reply = p.ErrorResponse(request.id, err.error)
            except Exception:
                _LOGGER.exception("Command %s from %s failed", request.method, self.label)
                reply = p.error_response(request.id, p.INTERNAL_ERROR,
                                         "internal error; see the gateway log", "internal_error")
            await self._send_quietly(reply)
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()

    def _on_notification(self, message: p.Notification) -> None:
        if message.method == p.GOAWAY:
            after = message.params.get("reconnect_after_ms", 0)
            valid = isinstance(after, int) and not isinstance(after, bool) and after >= 0
            self.goaway_after = min(after, 300_000) / 1000 if valid else 0.0
            _LOGGER.info("%s sent goaway (%s); reconnecting in %.1f s", self.label,
                         message.params.get("reason", "no reason"), self.goaway_after)
            self.goaway.set()
            self.ended.set()
            return
        _LOGGER.debug("%s: ignored notification %s", self.label, message.method)

    def _on_reply(self, message: p.Response | p.ErrorResponse) -> None:
        if isinstance(message, p.Response) and message.id == self._hello_id:
            self.hello_done = True
        if not self._pending.resolve(message):
            self.unknown_replies += 1
            _LOGGER.debug("%s: reply to unknown request id %r ignored", self.label, message.id)

    async def _send(self, message: p.Message) -> None:
        if isinstance(message, p.Request) and message.method == p.HELLO:
            self._hello_id = message.id
        try:
            text = p.encode(message)
        except (TypeError, ValueError):
            if not isinstance(message, p.Response):
                raise
            _LOGGER.exception("%s: result of request %r is not JSON", self.label, message.id)
            text = p.encode(p.error_response(message.id, p.INTERNAL_ERROR,
                                             "internal error; see the gateway log",
                                             "internal_error"))
        if self._tap is not None:
            self._tap("out", text)
        try:
            await self._conn.send_text(text)
        except Closed as err:
            raise LinkDown(f"the cloud connection closed: {err}") from None

    async def _send_quietly(self, message: p.Message) -> None:
        """Reply to the cloud; a connection lost meanwhile ends the reader anyway."""
        try:
            await self._send(message)
        except LinkDown:
            _LOGGER.debug("%s: reply not sent, connection closed", self.label)


def _describe_close(err: Closed) -> str:
    if err.code == 1009:
        return "the cloud sent a message larger than the configured limit (1009)"
    if err.code == 1011 and "keepalive" in err.reason:
        return "keepalive timeout: the cloud stopped answering pings"
    if err.code is None:
        return "connection lost without a close frame"
    return f"closed by the cloud (code {err.code}{': ' + err.reason if err.reason else ''})"
