"""Network commands on the router: one implementation for the page, the CLI and the cloud.

* ``network.get``      -> ``{"ports": [EthernetPort...], "awaiting_confirmation": ...}``;
  a DHCP port carries its current lease in a read-only ``lease`` object
* ``network.apply``    ``{"ports": [EthernetPort...]}`` -> new addresses, confirm token,
  rollback deadline (commit-confirm: ``NetworkComponent.propose``)
* ``network.confirm``  ``{"token"?: str}`` -> ``{"confirmed": true}``
* ``network.preflight`` -> the pre-flight report

``EthernetPort`` is the onboarding page's shape (docs/api.md): an address without prefix
plus a dotted-quad ``netmask``. The config's ``PortConfig`` is the authority for
validation; ports are stored in its canonical ``A.B.C.D/prefix`` form.

Only ports the gateway already manages (``network.ports``) can be changed: a gateway
whose config lists no ports does not manage the host's network, and no front door may
take over an interface the config left alone.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

from pydantic import ValidationError

from clgwd.commands import CommandContext, CommandRouter
from clgwd.config.loader import render_validation_error
from clgwd.config.network import PortConfig
from clgwd.net.preflight import PreflightTargets, run_preflight
from clgwd.net.reconcile import PortState
from clgwd.net.trial import InvalidPortConfig

if TYPE_CHECKING:
    from clgwd.net.component import NetworkComponent

ETHERNET_PORT_KEYS: Final = frozenset({"name", "mode", "address", "netmask", "gateway", "dns",
                                       "lease"})
READ_ONLY_KEYS: Final = frozenset({"lease"})
"""Shown by ``network.get``, accepted and ignored by ``network.apply``: sending back what
was read must be valid and change nothing."""
MAX_PORTS: Final = 8
MAX_DNS: Final = 3
"""resolv.conf uses at most three name servers."""
MAX_TOKEN: Final = 200


def port_to_ethernet(port: PortConfig, state: PortState | None = None) -> dict[str, Any]:
    """A configured port in the page's shape.

    A DHCP port's ``dns`` is the configured override list; what the DHCP server granted
    is in a separate read-only ``lease`` object (``None`` before the first lease), so a
    client that sends the document back does not pin the lease's values as settings.
    """
    out: dict[str, Any] = {"name": port.name, "mode": port.mode}
    if port.mode == "static":
        iface = port.interface()
        out.update(address=str(iface.ip), netmask=str(iface.netmask))
        if port.gateway:
            out["gateway"] = port.gateway
        out["dns"] = list(port.dns)
        return out
    out["dns"] = list(port.dns)
    out["lease"] = _lease_view(state)
    return out


def _lease_view(state: PortState | None) -> dict[str, Any] | None:
    address = next(iter(state.addresses), None) if state is not None else None
    if state is None or address is None:
        return None
    iface = ipaddress.IPv4Interface(address)
    return {"address": str(iface.ip), "netmask": str(iface.netmask), "gateway": state.gateway,
            "dns": list(state.dns), "expires": state.lease_expires}


def ethernet_to_port(data: Any, where: str) -> PortConfig:
    """Validate one ``EthernetPort`` and convert it to a canonical ``PortConfig``.

    Raises ``InvalidPortConfig`` naming the field (``ports[0].netmask: ...``).
    """
    if not isinstance(data, Mapping):
        raise InvalidPortConfig(f"{where}: must be an object")
    unknown = sorted(str(k) for k in data if k not in ETHERNET_PORT_KEYS)
    if unknown:
        raise InvalidPortConfig(f"{where}: unknown field(s) {', '.join(unknown)}")
    lease = data.get("lease")
    if lease is not None and not isinstance(lease, Mapping):
        raise InvalidPortConfig(f"{where}.lease: must be an object or null (read-only: "
                                "network.apply ignores it)")
    fields = {k: v for k, v in data.items() if v is not None and k not in READ_ONLY_KEYS}
    if fields.get("mode") == "static" and "netmask" not in fields \
            and "/" not in str(fields.get("address", "")):
        raise InvalidPortConfig(f"{where}.netmask: is required for a static port "
                                "(such as 255.255.255.0)")
    if isinstance(fields.get("dns"), list) and len(fields["dns"]) > MAX_DNS:
        raise InvalidPortConfig(f"{where}.dns: at most {MAX_DNS} DNS servers")
    try:
        port = PortConfig.model_validate(fields)
    except ValidationError as err:
        issues = render_validation_error(err)
        raise InvalidPortConfig("; ".join(
            f"{where}.{i}" if i.path else f"{where}: {i.message}" for i in issues)) from None
    if port.mode == "static" and port.netmask is not None:
        # One spelling for the same config: the stored and compared form is A.B.C.D/len.
        port = PortConfig.model_validate({**port.model_dump(), "netmask": None,
                                          "address": port.interface().with_prefixlen})
    return port


def merge_ports(current: Sequence[PortConfig], params: Mapping[str, Any]) -> list[PortConfig]:
    """The managed port list with the ports named in ``params`` replaced.

    Ports the request does not name keep their settings; a name the gateway does not
    manage is an error (it would take over an interface the config left alone).
    """
    raw = params.get("ports")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_PORTS:
        raise InvalidPortConfig(f"ports: must be a list of 1-{MAX_PORTS} ports")
    managed = {p.name: p for p in current}
    changes: dict[str, PortConfig] = {}
    for index, item in enumerate(raw):
        where = f"ports[{index}]"
        port = ethernet_to_port(item, where)
        if port.name in changes:
            raise InvalidPortConfig(f"{where}.name: {port.name!r} is given twice")
        if port.name not in managed:
            if not managed:
                raise InvalidPortConfig(
                    f"{where}.name: this gateway does not manage its network ports "
                    "(network.ports is empty in its config file)")
            raise InvalidPortConfig(f"{where}.name: {port.name!r} is not a port this gateway "
                                    f"manages ({', '.join(sorted(managed))})")
        changes[port.name] = port
    return [changes.get(p.name, p) for p in current]


def _confirm_token(params: Mapping[str, Any]) -> str | None:
    token = params.get("token")
    if token is None:
        return None
    if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN:
        raise InvalidPortConfig(f"token: must be a string of 1-{MAX_TOKEN} characters")
    return token


class NetworkCommands:
    """The router handlers of the network component."""

    def __init__(self, network: NetworkComponent) -> None:
        self._network = network
        self._apply_lock = asyncio.Lock()
        """Merge and propose as one step: two applies at once must not lose a port."""
        self.preflight_targets: Callable[[], Awaitable[PreflightTargets]] | None = None
        """Pre-flight's defaults from the rest of the configuration (set by the daemon:
        ``clgwd.net.preflight.config_targets``)."""

    def register(self, router: CommandRouter) -> None:
        router.register("network.get", self.get, mutating=False)
        router.register("network.apply", self.apply, mutating=True)
        router.register("network.confirm", self.confirm, mutating=True)
        router.register("network.preflight", self.preflight, mutating=False)

    async def get(self, params: Mapping[str, Any], ctx: CommandContext) -> dict[str, Any]:
        states = {s.name: s for s in self._network.port_states()}
        trial = self._network.trial
        return {
            "ports": [port_to_ethernet(p, states.get(p.name)) for p in self._network.ports],
            "awaiting_confirmation": None if trial is None else {
                "actor": trial.actor, "rollback_at": trial.deadline,
                "rollback_after_s": round(trial.remaining())},
        }

    async def apply(self, params: Mapping[str, Any], ctx: CommandContext) -> dict[str, Any]:
        async with self._apply_lock:
            ports = merge_ports(self._network.ports, params)
            named = {str(item["name"]) for item in params["ports"]}
            trial = await self._network.propose(ports, actor=ctx.actor)
        return {
            "new_addresses": [str(p.interface().ip) for p in trial.candidate
                              if p.name in named and p.mode == "static"],
            "confirm_token": trial.token,
            "rollback_after_s": round(trial.remaining()),
            "rollback_at": trial.deadline,
        }

    async def confirm(self, params: Mapping[str, Any], ctx: CommandContext) -> dict[str, Any]:
        return await self._network.confirm(ctx.actor, _confirm_token(params))

    async def preflight(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        targets = None if self.preflight_targets is None else await self.preflight_targets()
        return await run_preflight(self._network.network_config, targets)
