"""Component ``tunnel``: owns the gateway mux, the tunnel lifecycle and their timers.

It starts with no cloud link at all (the link calls ``mux.on_link_up`` when it has
one) and then behaves as "link down": no tunnel may be started usefully, and any that
are started stop after the grace period. The same ``start``/``stop``/``list`` methods
serve the cloud (JSON-RPC), the onboarding page and the CLI through the command router.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Self

from clgwd.commands import CommandContext, CommandRouter
from clgwd.component import ComponentState, StatusTracker
from clgwd.config import ClgwdConfig
from clgwd.protocol.credit import SessionLimits
from clgwd.protocol.wire import MAX_TICKET_LIFETIME
from clgwd.store import Store
from clgwd.tasks import TaskScope
from clgwd.tunnel.allowlist import (
    Allowlist,
    GatewaySelf,
    Resolver,
    default_resolver,
    read_own_addresses,
)
from clgwd.tunnel.audit import AuditLog
from clgwd.tunnel.gateway import GatewayMux
from clgwd.tunnel.manager import TunnelManager, TunnelState
from clgwd.tunnel.tickets import TicketVerifier

_LOGGER = logging.getLogger(__name__)

OWN_ADDRESS_REFRESH: Final = 60.0
REPLAY_SEED_WINDOW: Final = MAX_TICKET_LIFETIME * 2 + 30.0


class TunnelComponent:
    """Reverse tunnels over the cloud link (issue 7)."""

    name = "tunnel"

    def __init__(self, config: ClgwdConfig, store: Store, commands: CommandRouter | None,
                 *, resolver: Resolver = default_resolver,
                 own_ports: Callable[[], Iterable[int]] = tuple) -> None:
        self.tracker = StatusTracker(self.name)
        self.config = config
        self._own_ports = own_ports
        cfg = config.tunnel
        self.audit = AuditLog(store.db, store.outbox)
        self.scope = TaskScope(self.name)
        self.allowlist = Allowlist(resolver, GatewaySelf(management_ports=_mgmt_ports(config)))
        self._enrolled = ("", "")
        """(gateway id, authority key) from the cloud enrollment; config overrides them."""
        self.verifier = TicketVerifier(*self.identity())
        self.manager = TunnelManager(cfg, self.audit, self._reset_stream)
        self.mux = GatewayMux(self.manager, self.verifier, self.allowlist, self.audit,
                              self.scope, limits=_limits(config),
                              connect_timeout=cfg.connect_timeout)
        if commands is not None:
            commands.register("tunnel.start", self._cmd_start, mutating=True)
            commands.register("tunnel.stop", self._cmd_stop, mutating=True)
            commands.register("tunnel.list", self._cmd_list, mutating=False)

    async def __aenter__(self) -> Self:
        self.tracker.set(ComponentState.STARTING)
        await self.scope.__aenter__()
        try:
            await self._refresh_own_addresses()
            seen = await self.audit.recent_ticket_ids(time.time() - REPLAY_SEED_WINDOW)
            self.verifier.remember(seen)
        except BaseException:
            await self.scope.__aexit__(None, None, None)
            raise
        self._update_status()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.tracker.set(ComponentState.STOPPING)
        try:
            for runtime in self.manager.tunnels.values():
                if runtime.state is TunnelState.STARTED:
                    await self.manager.stop({"name": runtime.definition.name},
                                            "gateway:shutdown")
            if self.mux.session is not None:
                await self.mux.session.aclose("gateway shutting down")
        finally:
            await self.scope.__aexit__(*exc_info)
            self.tracker.set(ComponentState.STOPPED)

    async def run(self) -> None:
        """Timers: expiry, idle, link grace (fail closed), own-address refresh."""
        next_refresh = time.monotonic() + OWN_ADDRESS_REFRESH
        while True:
            await asyncio.sleep(self._tick_interval())
            await self.manager.tick(time.monotonic())
            if time.monotonic() >= next_refresh:
                next_refresh = time.monotonic() + OWN_ADDRESS_REFRESH
                await self._refresh_own_addresses()
            self._update_status()

    async def apply_config(self, config: ClgwdConfig) -> None:
        cfg = config.tunnel
        self.config = config
        self.verifier.reconfigure(*self.identity())
        self.allowlist.gateway = GatewaySelf(self.allowlist.gateway.addresses,
                                             _mgmt_ports(config) | frozenset(self._own_ports()))
        self.mux.limits = _limits(config)
        self.mux.connect_timeout = cfg.connect_timeout
        self.manager.apply_config(cfg)
        await self.manager.stop_retired()
        self._update_status()

    def identity(self) -> tuple[str, str]:
        """(authority public key, gateway id) in effect: config values win when set,
        else what enrollment delivered."""
        cfg = self.config.tunnel
        gateway_id, key = self._enrolled
        return cfg.authority_public_key or key, cfg.gateway_id or gateway_id

    def set_enrolled_identity(self, gateway_id: str, authority_public_key: str) -> None:
        """The link tells us who we are enrolled as and the cloud's tunnel authority key
        (before each connection attempt, so a re-enrollment takes effect)."""
        if (gateway_id, authority_public_key) == self._enrolled:
            return
        self._enrolled = (gateway_id, authority_public_key)
        try:
            self.verifier.reconfigure(*self.identity())
        except ValueError as err:  # a damaged stored key: refuse streams, say why
            _LOGGER.warning("Tunnel authority key from enrollment unusable (%s); streams "
                            "are refused until the gateway is enrolled again", err)
            self._enrolled = (gateway_id, "")
            self.verifier.reconfigure(*self.identity())
        _LOGGER.info("Tunnel tickets: audience %s, authority key from %s", self.identity()[1],
                     "config" if self.config.tunnel.authority_public_key else "enrollment")
        self._update_status()

    def _tick_interval(self) -> float:
        cfg = self.config.tunnel
        return max(0.02, min(1.0, cfg.link_grace / 4, cfg.idle_timeout / 4))

    def _reset_stream(self, stream: Any, reason: str) -> None:
        self.mux.reset_stream(stream, reason)

    async def _refresh_own_addresses(self) -> None:
        """Re-read the host's addresses and our bound ports (both can change at run time)."""
        own = await asyncio.to_thread(read_own_addresses)
        ports = _mgmt_ports(self.config) | frozenset(self._own_ports())
        self.allowlist.gateway = GatewaySelf(own, ports)

    def _update_status(self) -> None:
        started = sum(t.state is TunnelState.STARTED for t in self.manager.tunnels.values())
        link = self.mux.status()
        key, gateway_id = self.identity()
        if not self.manager.tunnels:
            state, message = ComponentState.RUNNING, "no tunnels configured"
        elif not (key and gateway_id):
            state, message = (ComponentState.RUNNING,
                              "no tunnel authority key or gateway id; streams are refused")
        elif link["link"] == "down":
            state, message = ComponentState.RUNNING, "cloud link down"
        else:
            state, message = ComponentState.RUNNING, f"{started} tunnel(s) started"
        self.tracker.set(state, message, tunnels=len(self.manager.tunnels),
                         started=started, **link)

    # -- commands -------------------------------------------------------------------------

    async def _cmd_start(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        result = {"tunnels": await self.manager.start(params, ctx.actor)}
        self._update_status()
        return result

    async def _cmd_stop(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        result = {"tunnels": await self.manager.stop(params, ctx.actor)}
        self._update_status()
        return result

    async def _cmd_list(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        return {"tunnels": self.manager.list()}


def _limits(config: ClgwdConfig) -> SessionLimits:
    cfg = config.tunnel
    return SessionLimits(stream_window=cfg.stream_window,
                         connection_window=cfg.connection_window, max_streams=cfg.max_streams,
                         shared_window_floor=cfg.shared_window_floor,
                         max_open_rate=cfg.max_open_rate,
                         open_burst=max(1, int(cfg.max_open_rate * 2)))


def _mgmt_ports(config: ClgwdConfig) -> frozenset[int]:
    return frozenset([listen.port for listen in config.http.listen]
                     + list(config.tunnel.extra_denied_ports))
