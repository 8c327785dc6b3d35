"""The command router: one implementation per command, three front doors.

The cloud (JSON-RPC over the link), the onboarding page's API and the CLI all call the
same registered handler. Every method the protocol names is known from the start;
until the component that owns it registers a handler, calling it answers a clear
``not_supported_yet`` error instead of pretending to succeed.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from clgwd.errors import ClgwdError, NotSupportedYet

_LOGGER = logging.getLogger(__name__)

PROTOCOL_METHODS: Final = (
    "status.report", "config.get", "config.set", "sync.now", "sync.preview",
    "tunnel.start", "tunnel.stop", "tunnel.list", "inventory.report", "logs.collect",
    "system.reboot", "system.factory_reset", "update.schedule", "update.apply",
    "network.confirm", "network.preflight",
)

LOCAL_METHODS: Final = (
    # Called by the onboarding page's API (issue 5); params and results are in
    # docs/api.md. Not (yet) part of the cloud protocol, but known, so that a build
    # without the owning part answers not_supported_yet instead of unknown_method.
    "network.get", "network.apply", "cloud.status", "cloud.enroll", "pbx.get", "pbx.set",
    "pbx.test", "sync.schedule.get", "sync.schedule.set", "update.schedule.get",
    "trace.calls", "trace.status", "trace.stop", "trace.file", "site.get", "site.set",
    "settings.forget", "cloud.proxy.get", "cloud.proxy.set",
    "sync.status", "sync.missing.get", "sync.missing.keep", "sync.missing.delete",
    "sync.kept.get", "monitor.get", "monitor.set", "monitor.forget",
    "inventory.settings.get", "inventory.settings.set", "inventory.settings.forget",
    "cloud.address.forget",
)

CLOUD_ACTOR: Final = "cloud"
CLOUD_REFUSED: Final[Mapping[str, str]] = {
    # Local methods the cloud may not call, and why (docs/api.md, "Who may call"). The
    # router refuses them for the actor ``cloud`` whatever the link forwards.
    "cloud.enroll": "enrollment binds the gateway to an account and may set the cloud "
                    "address; only someone at the gateway (page or CLI) may do it",
    "cloud.address.forget": "the cloud address saved on site is cleared on site; the cloud "
                            "must not redirect the gateway",
    "network.apply": "readdressing the LAN ports needs someone on site to confirm from the "
                     "new address",
    "pbx.set": "the PBX address and credentials are entered on site; the cloud must not "
               "point the sync (and its credentials) at another host",
    "trace.file": "a capture file is downloaded on site, from the onboarding page",
    "settings.forget": "settings saved on site (the PBX and its credentials) are cleared "
                       "on site",
    "cloud.proxy.set": "a wrong proxy would cut the cloud off from the gateway; the proxy "
                       "is set on site",
    "sync.missing.delete": "deleting the users the sync safety rule held back is confirmed "
                           "on site by someone who checked the list and typed their number",
    "monitor.set": "monitoring is the customer's own: a broker or trap manager set from the "
                   "cloud could send the gateway's status elsewhere; it is set on site",
    "monitor.forget": "monitoring settings saved on site are cleared on site",
    "inventory.settings.set": "the LAN hosts the gateway polls (with their SNMP "
                              "credentials) are chosen on site, never by the cloud",
    "inventory.settings.forget": "inventory settings saved on site are cleared on site",
}
# trace.calls / trace.stop / trace.fetch are the cloud's when sip.trace.allow_cloud is
# true (the vendor's Advanced page traces from the cloud); the call trace component
# refuses them with CallerRefused otherwise (clgwd/sip/trace.py).


@dataclass(frozen=True)
class CommandContext:
    """Who is asking: ``cloud``, ``local:web:<user>`` or ``local:cli``."""

    actor: str
    idempotency_key: str | None = None


Handler = Callable[[Mapping[str, Any], CommandContext], Awaitable[Any]]


class CallerRefused(ClgwdError):
    """The method exists but this caller may not use it (``CLOUD_REFUSED``)."""

    code = "local_only"
    http_status = 403


def check_caller(method: str, ctx: CommandContext) -> None:
    """Refuse a local-only method to the cloud, saying why (raises ``CallerRefused``)."""
    reason = CLOUD_REFUSED.get(method)
    if reason is not None and ctx.actor == CLOUD_ACTOR:
        raise CallerRefused(f"{method} may only be called from the gateway's LAN (onboarding "
                            f"page or CLI): {reason}")


class UnknownCommand(ClgwdError):
    code = "unknown_method"
    http_status = 404


@dataclass(frozen=True)
class _Registration:
    handler: Handler
    mutating: bool


class CommandRouter:
    """Maps method names to the owning component's handler."""

    def __init__(self) -> None:
        self._handlers: dict[str, _Registration] = {}

    def register(self, method: str, handler: Handler, *, mutating: bool) -> None:
        """Register the one handler for ``method``; a second registration is a bug."""
        if method in self._handlers:
            raise ValueError(f"command {method!r} is already registered")
        self._handlers[method] = _Registration(handler, mutating)

    def is_mutating(self, method: str) -> bool:
        reg = self._handlers.get(method)
        return reg.mutating if reg else False

    def methods(self) -> dict[str, bool]:
        """Every known method and whether this build implements it."""
        known = dict.fromkeys((*PROTOCOL_METHODS, *LOCAL_METHODS), False)
        known.update(dict.fromkeys(self._handlers, True))
        return known

    async def call(self, method: str, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        check_caller(method, ctx)
        reg = self._handlers.get(method)
        if reg is None:
            if method in PROTOCOL_METHODS or method in LOCAL_METHODS:
                raise NotSupportedYet(f"{method} is not supported by this gateway version yet")
            raise UnknownCommand(f"unknown method {method!r}")
        _LOGGER.debug("Command %s from %s", method, ctx.actor)
        return await reg.handler(params, ctx)
