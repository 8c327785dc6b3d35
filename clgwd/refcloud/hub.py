"""Tunnels in the reference cloud: one ticket authority, one cloud mux per gateway, Launches.

``TunnelHub`` belongs to a ``RefCloud``. It keeps the tunnel-authority key in the
refcloud directory (``tunnel-authority.key``, 0600; its public half goes to gateways in
the enrollment answer), attaches a ``CloudTunnels`` mux to the binary lane of every
gateway session after ``hello`` (again after each reconnect or ``goaway``: the newest
socket wins), and runs the "Launch" proxies: local listeners whose connections go
through one gateway's tunnel to that tunnel's LAN target.

A ``CloudTunnels`` object lives as long as its gateway is known, so a Launch URL keeps
working across reconnects; while the gateway is offline its connections get a 502.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Self

from clgwd.protocol.channel import LinkDown
from clgwd.protocol.credit import DEFAULT_LIMITS, SessionLimits
from clgwd.refcloud.sessions import GatewaySession, SessionClosed
from clgwd.refcloud.tunnels import CloudTunnels, LaunchProxy, TicketAuthority
from clgwd.tasks import TaskScope

_LOGGER = logging.getLogger(__name__)
AUTHORITY_FILE: Final = "tunnel-authority.key"


class LaunchError(Exception):
    """A Launch cannot be made; the message says why (HTTP 400/409 in the API)."""


class _Channel:
    """A gateway session as the tunnel session's ``BinaryChannel`` (LinkDown on close)."""

    def __init__(self, session: GatewaySession) -> None:
        self.session = session
        self.path_min_rtt = session.path_min_rtt  # clgwd.protocol.channel.PathAwareChannel

    async def send_binary(self, data: bytes) -> None:
        try:
            await self.session.send_binary(data)
        except SessionClosed as err:
            raise LinkDown(f"gateway {self.session.gateway_id} disconnected") from err


LAUNCH_MODES: Final = ("http", "bytes")


@dataclass
class Launch:
    """One Launch proxy: ``url`` reaches ``host:port`` through ``gateway``'s ``tunnel``."""

    gateway: str
    tunnel: str
    host: str
    port: int
    admin: str
    proxy: LaunchProxy
    created_at: float
    mode: str = "http"
    """``http`` rewrites ``Host`` (plain-HTTP admin pages); ``bytes`` forwards bytes
    untouched, for HTTPS targets (TLS stays end-to-end) or any other TCP protocol."""

    @property
    def url(self) -> str:
        return self.proxy.url

    def as_json(self) -> dict[str, Any]:
        return {"gateway": self.gateway, "tunnel": self.tunnel, "host": self.host,
                "port": self.port, "admin": self.admin, "url": self.url, "mode": self.mode,
                "created_at": self.created_at,
                "refusals": [err.reason for err in self.proxy.refusals[-5:]]}


class TunnelHub:
    """Ticket authority, per-gateway cloud muxes and Launch proxies of one refcloud."""

    def __init__(self, directory: Path, *, limits: SessionLimits = DEFAULT_LIMITS,
                 launch_host: str = "127.0.0.1") -> None:
        self.key_path = directory / AUTHORITY_FILE
        self.limits = limits
        self.launch_host = launch_host
        self.muxes: dict[str, CloudTunnels] = {}
        self.launches: dict[tuple[str, str], Launch] = {}
        self.known: dict[str, list[dict[str, Any]]] = {}
        """Last tunnel list each gateway reported (answers to tunnel.start/stop/list)."""
        self.scope = TaskScope("refcloud.tunnels")
        self._authority: TicketAuthority | None = None

    async def __aenter__(self) -> Self:
        self._authority = await asyncio.to_thread(TicketAuthority.load_or_create,
                                                  self.key_path)
        await self.scope.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            for launch in list(self.launches.values()):
                await launch.proxy.__aexit__(None, None, None)
            self.launches.clear()
            for mux in self.muxes.values():
                channel = mux.session.channel if mux.session is not None else None
                if isinstance(channel, _Channel) and channel.session.closed.is_set():
                    await mux.on_link_down()  # nobody to say goodbye to
                else:
                    await mux.close()  # RST + GOAWAY to a connected gateway (<= 1 s)
        finally:
            await self.scope.__aexit__(None, None, None)

    @property
    def authority(self) -> TicketAuthority:
        if self._authority is None:
            raise RuntimeError("refcloud tunnel hub is not open")
        return self._authority

    # -- gateway sessions ----------------------------------------------------------------------

    async def session_ready(self, session: GatewaySession) -> None:
        """Attach the gateway's cloud mux to this (newest) websocket's binary lane."""
        mux = self.muxes.get(session.gateway_id)
        if mux is None:
            mux = CloudTunnels(self.scope, limits=self.limits,
                               name=f"refcloud.{session.gateway_id}")
            self.muxes[session.gateway_id] = mux
        channel = _Channel(session)
        session.set_binary_handler(await mux.attach(channel))
        self.scope.create_task(self._watch(session, mux, channel),
                               name=f"refcloud.{session.gateway_id}.watch")

    async def _watch(self, session: GatewaySession, mux: CloudTunnels,
                     channel: _Channel) -> None:
        await session.closed.wait()
        await mux.detach(channel)

    # -- Launch ----------------------------------------------------------------------------------

    def remember(self, gateway: str, tunnels: object) -> None:
        """Keep the gateway's answer to tunnel.start/stop/list for the view."""
        if isinstance(tunnels, dict) and isinstance(tunnels.get("tunnels"), list):
            self.known[gateway] = [t for t in tunnels["tunnels"] if isinstance(t, dict)]

    async def launch(self, gateway: str, tunnel: str, *, admin: str,
                     host: str | None = None, port: int | None = None,
                     mode: str = "http") -> Launch:
        """A Launch proxy for ``tunnel`` (reused when one exists for the same target).

        ``mode`` is one of ``LAUNCH_MODES`` (see ``Launch.mode``).

        ``host``/``port`` default to the tunnel's target when that is one host and one
        port (from the gateway's last tunnel list); the gateway checks them again.
        """
        if mode not in LAUNCH_MODES:
            raise LaunchError(f"mode must be one of {', '.join(LAUNCH_MODES)}, not {mode!r}")
        target_host, target_port = self._target(gateway, tunnel, host, port)
        existing = self.launches.get((gateway, tunnel))
        if existing is not None:
            if (existing.host, existing.port, existing.admin, existing.mode) == (
                    target_host, target_port, admin, mode):
                return existing
            await self.close_launch(gateway, tunnel)
        mux = self.muxes.get(gateway)
        if mux is None:
            raise LaunchError(f"gateway {gateway} has never connected")
        proxy = LaunchProxy(mux, self.authority, self.scope, gateway=gateway, tunnel=tunnel,
                            host=target_host, port=target_port, admin=admin,
                            listen_host=self.launch_host, rewrite_host=mode == "http")
        await proxy.__aenter__()
        launch = Launch(gateway, tunnel, target_host, target_port, admin, proxy, time.time(),
                        mode)
        self.launches[(gateway, tunnel)] = launch
        _LOGGER.info("Launch %s for gateway %s tunnel %s -> %s:%d (admin %s)", launch.url,
                     gateway, tunnel, target_host, target_port, admin)
        return launch

    async def close_launch(self, gateway: str, tunnel: str | None = None) -> None:
        """Stop the Launch proxies of one tunnel, or of every tunnel of the gateway."""
        for key in [k for k in self.launches if k[0] == gateway and tunnel in (None, k[1])]:
            await self.launches.pop(key).proxy.__aexit__(None, None, None)

    def _target(self, gateway: str, tunnel: str, host: str | None,
                port: int | None) -> tuple[str, int]:
        info = next((t for t in self.known.get(gateway, []) if t.get("name") == tunnel), None)
        if info is None:
            raise LaunchError(f"gateway {gateway} did not report a tunnel named {tunnel!r}")
        if host is None:
            host = info.get("host")
            if not isinstance(host, str) or "/" in host:
                raise LaunchError(f"tunnel {tunnel} targets a network ({host}); give host")
        if port is None:
            ports = info.get("ports")
            if not (isinstance(ports, list) and len(ports) == 1 and isinstance(ports[0], int)):
                raise LaunchError(f"tunnel {tunnel} allows ports {ports}; give port")
            port = ports[0]
        return host, port

    def view(self, gateway: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(last reported tunnel list, Launch proxies) for the read-only view."""
        launches = [launch.as_json() for (gid, _), launch in sorted(self.launches.items())
                    if gid == gateway]
        return self.known.get(gateway, []), launches
