"""Config section ``tunnel``: allow-listed LAN targets, named tunnels, windows and timers.

Deny by default: with no ``targets`` (the default) no tunnel can be started, and with
no ``authority_public_key`` no stream ticket can verify. Special addresses (loopback,
link-local, the gateway's own addresses and management ports, ...) are refused even
inside a listed CIDR unless the target lists their class in ``allow_special``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, Field, model_validator

from clgwd.config.types import Seconds, StrictModel

MAX_TUNNEL_EXPIRY: Final = 12 * 3600.0
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
_HOSTNAME = re.compile(r"(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*"
                       r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_PORT_RANGE = re.compile(r"([0-9]{1,5})-([0-9]{1,5})")


def _check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        raise ValueError("must be 1-63 lower-case letters, digits, '.', '_' or '-'")
    return value


def _check_target_host(value: str) -> str:
    """An IP address, a CIDR network or a DNS name (names are resolved per stream)."""
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError:
        pass
    else:
        return value
    name = value.lower().rstrip(".")
    if not _HOSTNAME.fullmatch(name) or name.replace(".", "").isdigit() or \
            name.startswith("0x"):
        raise ValueError("must be an IP address, a CIDR network (host bits zero) or a DNS name")
    return name


def _check_ports(value: list[int | str]) -> list[int | str]:
    for item in value:
        if isinstance(item, int):
            low = high = item
        else:
            match = _PORT_RANGE.fullmatch(item)
            if match is None:
                raise ValueError("must be port numbers or 'low-high' ranges")
            low, high = int(match.group(1)), int(match.group(2))
        if not 1 <= low <= high <= 65535:
            raise ValueError("must be ports 1-65535 with low <= high")
    return value


def _check_public_key(value: str) -> str:
    if not value:
        return value
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error:
        raise ValueError("must be the base64 of a raw 32-byte Ed25519 public key") from None
    if len(raw) != 32:
        raise ValueError("must be the base64 of a raw 32-byte Ed25519 public key")
    return value


Name = Annotated[str, AfterValidator(_check_name)]


SpecialClass = Literal[
    "loopback", "this-network", "link-local", "multicast", "broadcast", "reserved",
    "unspecified", "ipv4-mapped", "ipv4-compatible", "nat64", "6to4", "gateway-address",
    "management-port"]
"""Address classes refused for every target unless the target lists them."""


class TunnelTarget(StrictModel):
    """One allow-listed LAN destination: a host, network or DNS name plus ports."""

    name: Name
    host: Annotated[str, AfterValidator(_check_target_host)]
    ports: Annotated[list[int | str], Field(min_length=1), AfterValidator(_check_ports)]
    allow_special: list[SpecialClass] = Field(default_factory=list)
    """Address classes this target may reach although they are always refused otherwise
    (e.g. ``[loopback]`` for a service on the gateway host itself)."""

    def port_allowed(self, port: int) -> bool:
        for item in self.ports:
            if isinstance(item, int):
                if item == port:
                    return True
            else:
                low, high = (int(x) for x in item.split("-"))
                if low <= port <= high:
                    return True
        return False


class TunnelDefinition(StrictModel):
    """A named tunnel the cloud (or a technician) can start and stop."""

    name: Name
    target: Name
    """The name of an entry in ``tunnel.targets``."""
    expiry: Annotated[float, Field(gt=0, le=MAX_TUNNEL_EXPIRY, strict=False)] | None = None
    """Seconds a started tunnel stays up; default ``tunnel.default_expiry``; max 12 h."""
    idle_timeout: Seconds | None = None
    max_streams: Annotated[int, Field(ge=1, le=4096)] = 32


class TunnelConfig(StrictModel):
    """Reverse tunnels over the cloud link (issue 7)."""

    gateway_id: str = ""
    """Our identity as named in tickets (the audience); empty = no ticket verifies."""
    authority_public_key: Annotated[str, AfterValidator(_check_public_key)] = ""
    """Base64 raw Ed25519 public key of the cloud's tunnel authority (not the TLS CA)."""
    targets: list[TunnelTarget] = Field(default_factory=list)
    tunnels: list[TunnelDefinition] = Field(default_factory=list)
    stream_window: Annotated[int, Field(ge=65536, le=16 * 1024 * 1024)] = 1024 * 1024
    connection_window: Annotated[int, Field(ge=65536, le=256 * 1024 * 1024)] = 16 * 1024 * 1024
    shared_window_floor: Annotated[int, Field(ge=16384, le=16 * 1024 * 1024)] = 32 * 1024
    """Least per-stream credit while a bulk stream shares the link with an interactive
    one: windows shrink towards twice the link's bandwidth-delay product, not below
    this; equal to ``stream_window`` turns the sharing off."""
    max_streams: Annotated[int, Field(ge=1, le=8192)] = 1024
    max_open_rate: Annotated[float, Field(gt=0, le=100_000, strict=False)] = 200.0
    """Stream opens per second the cloud may request (burst 2x); beyond it is a flood and
    the session is failed (audited)."""
    default_expiry: Annotated[float, Field(gt=0, le=MAX_TUNNEL_EXPIRY, strict=False)] = 3600.0
    idle_timeout: Seconds = 900.0
    link_grace: Seconds = 120.0
    """Seconds the cloud link may be down before every tunnel is stopped (fail closed)."""
    connect_timeout: Seconds = 10.0
    extra_denied_ports: list[int] = Field(default_factory=list)
    """More of the gateway's own ports to refuse (the HTTP listener ports always are)."""

    @model_validator(mode="after")
    def _check_references(self) -> TunnelConfig:
        if self.shared_window_floor > self.stream_window:
            raise ValueError(f"shared_window_floor: {self.shared_window_floor} must not "
                             f"exceed stream_window ({self.stream_window})")
        names = [t.name for t in self.targets]
        if len(names) != len(set(names)):
            raise ValueError("targets: names must be unique")
        tunnels = [t.name for t in self.tunnels]
        if len(tunnels) != len(set(tunnels)):
            raise ValueError("tunnels: names must be unique")
        for tunnel in self.tunnels:
            if tunnel.target not in names:
                raise ValueError(f"tunnels: {tunnel.name}.target must name one of the targets")
        return self

    def target(self, name: str) -> TunnelTarget:
        for target in self.targets:
            if target.name == name:
                return target
        raise KeyError(name)
