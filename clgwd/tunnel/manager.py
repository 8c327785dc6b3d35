"""Tunnel lifecycle: which named tunnels are started, until when, and who asked.

A tunnel is the authorization envelope streams live in. It is started for a bounded
time (default 1 h, at most 12 h), stops by itself when idle, and every tunnel stops if
the cloud link stays down longer than the grace period: the cloud must ask again
(fail closed). Stopping a tunnel resets its streams. Each transition is audited before
it is reported as done.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from clgwd.config.tunnel import TunnelConfig, TunnelDefinition, TunnelTarget
from clgwd.errors import ClgwdError
from clgwd.protocol.streams import Stream
from clgwd.tunnel.audit import AuditFailed, AuditLog

_LOGGER = logging.getLogger(__name__)


class TunnelNotFound(ClgwdError):
    code = "tunnel_not_found"
    http_status = 404


class InvalidTunnelRequest(ClgwdError):
    code = "invalid_params"
    http_status = 400


class TunnelState(enum.StrEnum):
    STOPPED = "stopped"
    STARTED = "started"


@dataclass
class TunnelRuntime:
    """Live state of one configured tunnel; changed only by ``TunnelManager``."""

    definition: TunnelDefinition
    target: TunnelTarget
    state: TunnelState = TunnelState.STOPPED
    started_at: float | None = None
    expires_at: float | None = None
    started_by: str | None = None
    idle_timeout: float = 900.0
    last_use: float | None = None
    streams: set[Stream] = field(default_factory=set)
    streams_total: int = 0
    bytes_in: int = 0
    bytes_out: int = 0

    def status(self, now: float) -> dict[str, Any]:
        live_in = sum(s.bytes_from_peer for s in self.streams)
        live_out = sum(s.bytes_to_peer for s in self.streams)
        return {
            "name": self.definition.name, "target": self.target.name,
            "host": self.target.host, "ports": list(self.target.ports),
            "status": self.state.value, "started_at": self.started_at,
            "expires_at": self.expires_at, "expires_in": (
                max(0.0, self.expires_at - now) if self.expires_at else None),
            "started_by": self.started_by, "streams": len(self.streams),
            "streams_total": self.streams_total,
            "bytes_from_cloud": self.bytes_in + live_in,
            "bytes_to_cloud": self.bytes_out + live_out, "last_use": self.last_use,
        }


ResetStream = Callable[[Stream, str], None]


class TunnelManager:
    """Starts, stops and expires tunnels; answers "may this tunnel take a stream now"."""

    def __init__(self, config: TunnelConfig, audit: AuditLog, reset_stream: ResetStream,
                 clock: Callable[[], float] = time.time) -> None:
        self._audit = audit
        self._reset = reset_stream
        self._clock = clock
        self.config = config
        self.tunnels: dict[str, TunnelRuntime] = {}
        self.link_down_since: float | None = clock()
        self._retired: dict[str, TunnelRuntime] = {}
        self.apply_config(config)

    def apply_config(self, config: TunnelConfig) -> list[str]:
        """Adopt a new config; returns tunnels that were removed or changed (to stop)."""
        self.config = config
        changed = []
        fresh: dict[str, TunnelRuntime] = {}
        for definition in config.tunnels:
            target = config.target(definition.target)
            old = self.tunnels.get(definition.name)
            if old is not None and old.definition == definition and old.target == target:
                fresh[definition.name] = old
                continue
            if old is not None and old.state is TunnelState.STARTED:
                changed.append(definition.name)
            fresh[definition.name] = TunnelRuntime(definition, target)
        changed += [n for n, t in self.tunnels.items()
                    if n not in fresh and t.state is TunnelState.STARTED]
        self._retired = {n: self.tunnels[n] for n in changed}
        self.tunnels = fresh
        return changed

    async def stop_retired(self) -> None:
        """Stop tunnels whose definition changed or vanished in the last reload."""
        retired, self._retired = self._retired, {}
        for runtime in retired.values():
            await self._stop(runtime, "local:config", "config-changed")

    # -- commands ---------------------------------------------------------------------

    def _get(self, name: str) -> TunnelRuntime:
        runtime = self.tunnels.get(name)
        if runtime is None:
            raise TunnelNotFound(f"no tunnel named {name!r} is configured")
        return runtime

    def _selected(self, params: Mapping[str, Any]) -> list[TunnelRuntime]:
        name, every = params.get("name"), params.get("all", False)
        if every is True and name is None:
            return list(self.tunnels.values())
        if isinstance(name, str) and every is False:
            return [self._get(name)]
        raise InvalidTunnelRequest("give either name (a string) or all: true")

    async def start(self, params: Mapping[str, Any], actor: str) -> list[dict[str, Any]]:
        """Start one tunnel (``name``) or every tunnel (``all: true``); idempotent."""
        expiry = params.get("expiry")
        if expiry is not None and (not isinstance(expiry, int | float) or
                                   isinstance(expiry, bool) or expiry <= 0):
            raise InvalidTunnelRequest("expiry must be a positive number of seconds")
        for runtime in self._selected(params):
            await self._start(runtime, actor, expiry)
        return self.list()

    async def stop(self, params: Mapping[str, Any], actor: str) -> list[dict[str, Any]]:
        for runtime in self._selected(params):
            await self._stop(runtime, actor, "stopped")
        return self.list()

    def list(self) -> list[dict[str, Any]]:
        now = self._clock()
        return [t.status(now) for t in self.tunnels.values()]

    async def _start(self, runtime: TunnelRuntime, actor: str, expiry: float | None) -> None:
        limit = runtime.definition.expiry or self.config.default_expiry
        lifetime = min(float(expiry), limit) if expiry is not None else limit
        now = self._clock()
        await self._audit.append("tunnel_start", {
            "tunnel": runtime.definition.name, "actor": actor, "target": runtime.target.name,
            "expires_at": now + lifetime, "restart": runtime.state is TunnelState.STARTED})
        runtime.state = TunnelState.STARTED
        runtime.started_at = now
        runtime.expires_at = now + lifetime
        runtime.started_by = actor
        runtime.last_use = now
        runtime.idle_timeout = runtime.definition.idle_timeout or self.config.idle_timeout
        _LOGGER.info("Tunnel %s started by %s for %.0f s", runtime.definition.name, actor,
                     lifetime)

    async def _stop(self, runtime: TunnelRuntime, actor: str, reason: str) -> None:
        if runtime.state is TunnelState.STOPPED:
            return
        runtime.state = TunnelState.STOPPED
        runtime.expires_at = None
        for stream in list(runtime.streams):
            self._reset(stream, f"tunnel {reason}")
        rtype = "tunnel_expired" if reason == "expired" else "tunnel_stop"
        try:
            await self._audit.append(rtype, {"tunnel": runtime.definition.name,
                                             "actor": actor, "reason": reason})
        except AuditFailed as err:
            # Closing is always allowed (fail closed); only the record is missing.
            _LOGGER.error("Tunnel %s stopped but not audited: %s",  # noqa: TRY400
                          runtime.definition.name, err)
        _LOGGER.info("Tunnel %s stopped (%s) by %s", runtime.definition.name, reason, actor)

    # -- streams ------------------------------------------------------------------------

    def admit(self, name: str) -> TunnelRuntime:
        """The started tunnel a new stream may join, or raise ``TunnelRefused``."""
        runtime = self.tunnels.get(name)
        if runtime is None:
            raise TunnelRefused("unknown-tunnel", f"no tunnel named {name!r}")
        if runtime.state is not TunnelState.STARTED:
            raise TunnelRefused("tunnel-stopped", f"tunnel {name} is not started")
        if len(runtime.streams) >= runtime.definition.max_streams:
            raise TunnelRefused("tunnel-stream-limit",
                                f"tunnel {name} has {len(runtime.streams)} streams")
        return runtime

    def stream_opened(self, runtime: TunnelRuntime, stream: Stream) -> None:
        runtime.streams.add(stream)
        runtime.streams_total += 1
        runtime.last_use = self._clock()

    def stream_closed(self, runtime: TunnelRuntime, stream: Stream) -> None:
        runtime.streams.discard(stream)
        runtime.bytes_in += stream.bytes_from_peer
        runtime.bytes_out += stream.bytes_to_peer
        runtime.last_use = self._clock()

    # -- timers -------------------------------------------------------------------------

    def link_up(self) -> None:
        self.link_down_since = None

    def link_down(self) -> None:
        if self.link_down_since is None:
            self.link_down_since = self._clock()

    async def tick(self, monotonic_now: float) -> None:
        """Expire, idle-stop and fail-closed; called every second or so by the component."""
        now = self._clock()
        link_gone = (self.link_down_since is not None
                     and now - self.link_down_since > self.config.link_grace)
        for runtime in list(self.tunnels.values()):
            if runtime.state is not TunnelState.STARTED:
                continue
            if link_gone:
                await self._stop(runtime, "gateway", "link-down")
            elif runtime.expires_at is not None and now >= runtime.expires_at:
                await self._stop(runtime, "gateway", "expired")
            elif self._idle_for(runtime, now, monotonic_now) > runtime.idle_timeout:
                await self._stop(runtime, "gateway", "idle")

    def _idle_for(self, runtime: TunnelRuntime, now: float, monotonic_now: float) -> float:
        idle = now - (runtime.last_use or now)
        for stream in runtime.streams:
            idle = min(idle, monotonic_now - stream.last_activity)
        return idle


class TunnelRefused(Exception):
    """The tunnel cannot take a stream; ``reason`` is a stable token."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

