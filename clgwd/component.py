"""The shape every daemon component shares: lifecycle, status and config reload.

A component is an async context manager (``__aenter__`` acquires its resources and
binds its sockets, ``__aexit__`` releases them), may run long-lived loops in ``run()``
under the daemon's root TaskGroup, reports a ``ComponentStatus``, and applies a new
validated config in ``apply_config()``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, Self

from clgwd.config import ClgwdConfig

_LOGGER = logging.getLogger(__name__)


class ComponentState(StrEnum):
    """Lifecycle and health of one component."""

    STARTING = "starting"
    RUNNING = "running"
    DEGRADED = "degraded"
    """Working but impaired (e.g. a peer unreachable); retrying by itself."""
    STOPPING = "stopping"
    STOPPED = "stopped"
    FAILED = "failed"
    """Cannot recover by itself; the watchdog stops pinging so systemd restarts us."""


HEALTHY_STATES = frozenset({ComponentState.STARTING, ComponentState.RUNNING,
                            ComponentState.DEGRADED})


@dataclass(frozen=True)
class ComponentStatus:
    """A snapshot of one component's state for status pages, metrics and sd_notify."""

    state: ComponentState
    message: str = ""
    since: float = field(default_factory=time.time)
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"state": self.state.value, "message": self.message, "since": self.since,
                "details": dict(self.details)}


StatusListener = Callable[[str, ComponentStatus], None]


class StatusTracker:
    """Holds one component's status; logs transitions and tells listeners once per change."""

    def __init__(self, component: str) -> None:
        self.component = component
        self._status = ComponentStatus(ComponentState.STOPPED)
        self._listeners: list[StatusListener] = []

    @property
    def current(self) -> ComponentStatus:
        return self._status

    def subscribe(self, listener: StatusListener) -> None:
        self._listeners.append(listener)

    def set(self, state: ComponentState, message: str = "", **details: Any) -> None:
        """Record a state; ``since`` only moves when the state or message changes."""
        old = self._status
        if old.state == state and old.message == message:
            if details != old.details:
                self._status = ComponentStatus(state, message, old.since, details)
            return
        self._status = ComponentStatus(state, message, time.time(), details)
        level = logging.WARNING if state in {ComponentState.DEGRADED,
                                             ComponentState.FAILED} else logging.INFO
        _LOGGER.log(level, "%s: %s -> %s%s", self.component, old.state.value, state.value,
                    f" ({message})" if message else "")
        for listener in self._listeners:
            listener(self.component, self._status)


class Component(Protocol):
    """What the daemon needs from each component."""

    name: str
    tracker: StatusTracker

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...

    async def run(self) -> None:
        """Long-lived loops; return when there is nothing to run. Cancelled at shutdown."""

    async def apply_config(self, config: ClgwdConfig) -> None:
        """Apply a newly loaded, already validated config (SIGHUP or API)."""
