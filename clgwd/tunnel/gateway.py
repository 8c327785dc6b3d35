"""The gateway end of the tunnel protocol: the ``BinaryEndpoint`` the cloud link feeds.

For each OPEN from the cloud, in this order and before any byte reaches the LAN:
the tunnel must be started, the ticket must verify (signature, audience, expiry,
tunnel, target, replay), the allowlist must approve every resolved address, the
connection is made to an approved *literal* address, and the stream-open audit record
must be committed. Any failure answers OPEN_ERR and is audited as a denial.

Streams belong to one link connection: when the link drops they end (the cloud's
sockets are gone with it); tunnels survive a short outage and stop after the grace
period (``TunnelManager.tick``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time
from dataclasses import dataclass
from typing import Any

from clgwd.protocol.channel import BinaryChannel
from clgwd.protocol.credit import SessionLimits
from clgwd.protocol.session import Role, Session
from clgwd.protocol.streams import Stream, StreamClosed
from clgwd.protocol.wire import ErrorCode, OpenRequest, ProtocolError, TicketClaims
from clgwd.tasks import TaskScope
from clgwd.tunnel.allowlist import Allowlist, Denied, IPAddress
from clgwd.tunnel.audit import AuditFailed, AuditLog
from clgwd.tunnel.manager import TunnelManager, TunnelRefused, TunnelRuntime, TunnelState
from clgwd.tunnel.tickets import TicketRejected, TicketVerifier

_LOGGER = logging.getLogger(__name__)


@dataclass
class StreamContext:
    """What the gateway remembers about an accepted stream (for close audit)."""

    runtime: TunnelRuntime
    claims: TicketClaims
    peer: str


class GatewayMux:
    """Implements ``clgwd.protocol.channel.BinaryEndpoint`` for the tunnel protocol."""

    def __init__(self, manager: TunnelManager, verifier: TicketVerifier, allowlist: Allowlist,
                 audit: AuditLog, scope: TaskScope, *, limits: SessionLimits,
                 connect_timeout: float) -> None:
        self.manager = manager
        self.verifier = verifier
        self.allowlist = allowlist
        self.limits = limits
        self.connect_timeout = connect_timeout
        self._audit = audit
        self._scope = scope
        self.session: Session | None = None
        self.protocol_errors = 0
        self.link_ups = 0

    # -- BinaryEndpoint -----------------------------------------------------------------

    async def on_link_up(self, channel: BinaryChannel) -> None:
        if self.session is not None:
            self.session.close("link replaced")
        self.link_ups += 1
        self.session = Session(channel, Role.GATEWAY, self._scope, limits=self.limits,
                               on_open=self._on_open, on_stream_closed=self._on_closed,
                               on_protocol_error=self._on_protocol_error,
                               on_refused=self._on_session_refused,
                               name=f"tunnel.session{self.link_ups}")
        self.session.start()
        self.manager.link_up()

    async def on_binary(self, data: bytes) -> None:
        self.on_binary_nowait(data)

    def on_binary_nowait(self, data: bytes) -> None:
        """``DirectBinaryEndpoint``: the picows link feeds frames from its callback."""
        if self.session is not None:
            self.session.feed(data)

    async def on_link_down(self) -> None:
        if self.session is not None:
            self.session.close("link down")
            self.session = None
        self.manager.link_down()

    # -- streams ---------------------------------------------------------------------------

    def reset_stream(self, stream: Stream, reason: str) -> None:
        stream.session.close_stream(stream, reason, ErrorCode.CANCEL, send_rst=True)

    def _on_open(self, session: Session, stream: Stream, request: OpenRequest) -> None:
        self._scope.create_task(self._open(session, stream, request),
                                name=f"clgwd[tunnel].open{stream.id}")

    async def _open(self, session: Session, stream: Stream, request: OpenRequest) -> None:
        try:
            await self._authorize_and_connect(session, stream, request)
        except asyncio.CancelledError:
            session.close_stream(stream, "gateway stopping", ErrorCode.SHUTDOWN, send_rst=True)
            raise

    async def _authorize_and_connect(self, session: Session, stream: Stream,
                                     request: OpenRequest) -> None:
        """Admission, ticket, allowlist, connect, audit: each failure is a denial."""
        base = {"stream": stream.id, "tunnel": request.tunnel,
                "requested": f"{request.host}:{request.port}"}
        claims: TicketClaims | None = None
        try:
            runtime = self.manager.admit(request.tunnel)
            claims = self.verifier.verify(request.ticket, tunnel=request.tunnel,
                                          host=request.host, port=request.port)
            addresses = await self.allowlist.check(runtime.target, request.host, request.port)
        except (TunnelRefused, TicketRejected, Denied) as err:
            await self._deny(session, stream, base, claims, reason=err.reason,
                             detail=err.detail)
            return
        transport_peer = await self._connect(session, stream, addresses, request.port)
        if transport_peer is None:
            await self._deny(session, stream, base, claims, reason="connect-failed",
                             detail=f"no approved address of {request.host} answered",
                             code=ErrorCode.CONNECT_FAILED, rtype="stream_open_failed")
            return
        await self._commit_open(session, stream, runtime, claims, peer=transport_peer,
                                base=base)

    async def _commit_open(self, session: Session, stream: Stream, runtime: TunnelRuntime,
                           claims: TicketClaims, *, peer: str, base: dict[str, Any]) -> None:
        if stream.closed or runtime.state is not TunnelState.STARTED:
            session.close_stream(stream, "cancelled during open", ErrorCode.CANCEL,
                                 send_rst=True)
            return
        if len(runtime.streams) >= runtime.definition.max_streams:  # concurrent opens raced
            await self._deny(session, stream, base, claims, reason="tunnel-stream-limit",
                             detail=f"tunnel {runtime.definition.name} is full")
            return
        self.manager.stream_opened(runtime, stream)  # hold the slot across the audit await
        try:
            await self._audit.append("stream_open", {
                **base, **_ticket_fields(claims), "target": peer})
        except AuditFailed as err:
            _LOGGER.error("Refusing stream %d: %s", stream.id, err)  # noqa: TRY400
            self.manager.stream_closed(runtime, stream)
            session.refuse(stream, ErrorCode.INTERNAL_ERROR, "audit log unavailable")
            return
        except asyncio.CancelledError:
            self.manager.stream_closed(runtime, stream)
            raise
        if stream.closed:  # reset by the cloud meanwhile: nothing was carried
            self.manager.stream_closed(runtime, stream)
            return
        stream.context = StreamContext(runtime, claims, peer)
        session.accept(stream, peer)

    async def _connect(self, session: Session, stream: Stream, addresses: list[IPAddress],
                       port: int) -> str | None:
        """Connect to the first approved address that answers; None if none did."""
        loop = asyncio.get_running_loop()
        for address in addresses:
            if stream.closed:
                return None
            try:
                async with asyncio.timeout(self.connect_timeout):
                    await loop.create_connection(stream.protocol, str(address), port)
            except (OSError, TimeoutError) as err:
                _LOGGER.info("Tunnel stream %d: %s:%d: %s", stream.id, address, port,
                             type(err).__name__)
                continue
            return _format_peer(address, port)
        return None

    async def _deny(self, session: Session, stream: Stream, base: dict[str, Any],
                    claims: TicketClaims | None, *, reason: str, detail: str,
                    code: ErrorCode = ErrorCode.DENIED, rtype: str = "denied") -> None:
        _LOGGER.warning("Tunnel stream %d denied: %s (%s)", stream.id, reason, detail)
        session.refuse(stream, code, reason)
        record = {**base, "reason": reason, "detail": detail}
        if claims is not None:
            record.update(_ticket_fields(claims))
        try:
            await self._audit.append(rtype, record)
        except AuditFailed as err:
            _LOGGER.error("Could not audit a denial: %s", err)  # noqa: TRY400

    def _on_closed(self, session: Session, stream: Stream, info: StreamClosed) -> None:
        context = stream.context
        if not isinstance(context, StreamContext):
            return  # never opened: its denial was audited already
        self.manager.stream_closed(context.runtime, stream)
        record = {"stream": stream.id, "tunnel": context.runtime.definition.name,
                  "ticket_id": context.claims.jti, "admin": context.claims.admin,
                  "target": context.peer, "reason": info.reason, "code": info.code.name,
                  "bytes_from_cloud": info.bytes_from_peer,
                  "bytes_to_cloud": info.bytes_to_peer,
                  "duration": round(info.duration, 3)}
        self._audit_later("stream_close", record)

    def _on_session_refused(self, session: Session, stream_id: int, request: OpenRequest,
                            reason: str) -> None:
        """Refused by the session itself (stream limit, draining): audit like any denial."""
        _LOGGER.warning("Tunnel stream %d refused: %s", stream_id, reason)
        self._audit_later("denied", {"stream": stream_id, "tunnel": request.tunnel,
                                     "requested": f"{request.host}:{request.port}",
                                     "reason": reason, "detail": "refused before checks"})

    def _on_protocol_error(self, session: Session, err: ProtocolError) -> None:
        self.protocol_errors += 1
        self._audit_later("denied", {"reason": "protocol-error", "code": err.code.name,
                                     "detail": err.message})

    def _audit_later(self, rtype: str, record: dict[str, Any]) -> None:
        """Audit from a callback that cannot await (the scope owns the task)."""
        if not self._scope.open:
            _LOGGER.warning("Tunnel audit after shutdown, not recorded: %s %s", rtype, record)
            return
        self._scope.create_task(self._append_logged(rtype, record),
                                name="clgwd[tunnel].audit")

    async def _append_logged(self, rtype: str, record: dict[str, Any]) -> None:
        try:
            await self._audit.append(rtype, record)
        except AuditFailed as err:
            _LOGGER.error("Could not audit %s: %s", rtype, err)  # noqa: TRY400

    def status(self) -> dict[str, Any]:
        session = self.session
        return {"link": "up" if session is not None else "down",
                "streams": len(session.streams) if session is not None else 0,
                "protocol_errors": self.protocol_errors,
                "link_down_for": (time.time() - self.manager.link_down_since
                                  if self.manager.link_down_since is not None else None)}


def _ticket_fields(claims: TicketClaims) -> dict[str, Any]:
    return {"ticket_id": claims.jti, "ticket_exp": claims.exp, "admin": claims.admin}


def _format_peer(address: IPAddress, port: int) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        return f"[{address}]:{port}"
    return f"{address}:{port}"
