"""The ``network`` config section: Ethernet ports, mDNS, commit-confirm and pre-flight.

Everything here is validated before the network component touches the kernel: a mask
of 33, a gateway outside the port's subnet, a DNS server that is not an IP address or
two ports whose subnets overlap are config errors with a key path, never a half-applied
kernel state. Every key has a default; with no ports configured the network component
manages nothing (it only reports link state) and mDNS stays off unless enabled.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Final, Literal, Self

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from clgwd.config.types import AbsolutePath, IpAddressText, Port, Seconds, StrictModel

_IFNAME_MAX: Final = 15  # IFNAMSIZ - 1
_HOST_LABEL_MAX: Final = 63


def _check_ifname(value: str) -> str:
    if not 1 <= len(value) <= _IFNAME_MAX or any(c in value for c in "/ \t\n:") \
            or value in {".", ".."}:
        raise ValueError("must be a Linux interface name (1-15 characters, no '/', ':' or spaces)")
    return value


def _check_ipv4(value: str) -> str:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError("must be an IPv4 address") from None
    return value


def _check_hostname_label(value: str) -> str:
    label = value.lower()
    if not 1 <= len(label) <= _HOST_LABEL_MAX or label.startswith("-") or label.endswith("-") \
            or not all(c.isascii() and (c.isalnum() or c == "-") for c in label):
        raise ValueError("must be one DNS label: letters, digits and '-', 1-63 characters")
    return label


def _check_target_host(value: str) -> str:
    """A host name or address that pre-flight connects to."""
    if not value or len(value) > 253 or any(c.isspace() for c in value):
        raise ValueError("must be a host name or an IP address")
    return value


InterfaceName = Annotated[str, AfterValidator(_check_ifname)]
Ipv4Text = Annotated[str, AfterValidator(_check_ipv4)]
HostLabel = Annotated[str, AfterValidator(_check_hostname_label)]
TargetHost = Annotated[str, AfterValidator(_check_target_host)]


class PortConfig(StrictModel):
    """One Ethernet port: DHCP, or a static IPv4 address with gateway and DNS servers.

    ``address`` is ``A.B.C.D/prefix``, or ``A.B.C.D`` together with ``netmask``. Field
    order matters: each validator sees the fields declared before it, so errors name
    the key that is wrong (``ports[0].gateway``), not the whole port.
    """

    name: InterfaceName
    mode: Literal["dhcp", "static"] = "dhcp"
    netmask: Ipv4Text | None = None
    address: str | None = None
    gateway: Ipv4Text | None = None
    dns: list[IpAddressText] = Field(default_factory=list)

    @field_validator("netmask", "gateway")
    @classmethod
    def _only_static(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("mode") == "dhcp":
            raise ValueError("must not be set when mode is dhcp")
        return value

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if info.data.get("mode") == "dhcp":
            raise ValueError("must not be set when mode is dhcp")
        if "netmask" in info.data:  # absent = netmask itself was invalid, reported there
            parse_interface(value, info.data["netmask"])
        return value

    @field_validator("gateway")
    @classmethod
    def _check_gateway(cls, value: str | None, info: ValidationInfo) -> str | None:
        address = info.data.get("address")
        if value is None or address is None or "netmask" not in info.data:
            return value
        interface = parse_interface(address, info.data.get("netmask"))
        gateway = ipaddress.IPv4Address(value)
        if gateway not in interface.network:
            raise ValueError(f"must be inside the port's subnet {interface.network}")
        if gateway == interface.ip:
            raise ValueError("must not be the port's own address")
        return value

    @model_validator(mode="after")
    def _check_static(self) -> Self:
        if self.mode == "static" and self.address is None:
            raise ValueError("address: is required when mode is static")
        return self

    def interface(self) -> ipaddress.IPv4Interface:
        """The static address with its prefix (only for mode static)."""
        if self.address is None:
            raise ValueError("address: is required when mode is static")
        return parse_interface(self.address, self.netmask)


def parse_interface(address: str, netmask: str | None) -> ipaddress.IPv4Interface:
    """Parse ``A.B.C.D/len`` or ``A.B.C.D`` + mask into an interface, with clear errors."""
    ip_text, slash, prefix_text = address.partition("/")
    try:
        ip = ipaddress.IPv4Address(ip_text)
    except ValueError:
        raise ValueError("must be an IPv4 address with a /prefix (1-32)") from None
    if slash and netmask is not None:
        raise ValueError("must not carry a /prefix when netmask is set")
    if slash:
        if not prefix_text.isdigit() or not 0 < int(prefix_text) <= 32:
            raise ValueError("must have a /prefix of 1-32")
        prefix: int | str = int(prefix_text)
    elif netmask is not None:
        prefix = netmask
    else:
        raise ValueError("must carry a /prefix (1-32), or netmask must be set")
    try:
        interface = ipaddress.IPv4Interface((ip, prefix))
    except (ValueError, ipaddress.NetmaskValueError):
        raise ValueError(f"must use a contiguous netmask; {netmask!r} is not one") from None
    if interface.network.prefixlen < 31 and ip in {interface.network.network_address,
                                                   interface.network.broadcast_address}:
        raise ValueError(f"must not be the network or broadcast address of "
                         f"{interface.network}")
    return interface


class MdnsConfig(StrictModel):
    """Publishing ``<hostname>.local`` and the web services over multicast DNS.

    Off by default so a daemon started in a developer's or CI's root namespace never
    multicasts on the machine's real interface; the appliance image enables it.
    """

    enabled: bool = False
    hostname: HostLabel = "cloudlink"
    """Preferred name; on a conflict ``<hostname>-2``, ``-3``, ... is used and persisted."""
    http_port: Port = 80
    https_port: Port | None = 443
    debounce: Seconds = 0.3
    """Address changes within this window are announced together."""
    probe_timeout: Seconds = 0.75
    """How long to listen for another host answering for the name before claiming it."""


class ConfirmConfig(StrictModel):
    """Commit-confirm: a changed port config must be confirmed or it is rolled back."""

    timeout: Seconds = 90.0


class ProxyConfig(StrictModel):
    """An HTTP proxy that pre-flight checks with a CONNECT to the cloud host."""

    host: TargetHost
    port: Port = 3128


class PreflightConfig(StrictModel):
    """Targets of ``clgwd preflight``; each check is skipped when its target is unset."""

    dns_name: TargetHost | None = None
    """A name that must resolve (defaults to ``cloud_host``)."""
    ntp_servers: list[TargetHost] = Field(default_factory=list)
    cloud_host: TargetHost | None = None
    cloud_port: Port = 443
    stun_host: TargetHost | None = None
    stun_ports: list[Port] = Field(default_factory=lambda: [3478, 3479])
    sip_tls_host: TargetHost | None = None
    sip_tls_port: Port = 5061
    pbx_host: TargetHost | None = None
    pbx_port: Port | None = None
    proxy: ProxyConfig | None = None
    timeout: Seconds = 3.0
    """Per-check timeout."""


class NetworkConfig(StrictModel):
    """The whole ``network`` section."""

    ports: list[PortConfig] = Field(default_factory=list)
    mdns: MdnsConfig = MdnsConfig()
    confirm: ConfirmConfig = ConfirmConfig()
    resolv_conf: AbsolutePath | None = None
    """Where DNS servers (static or from DHCP) are written; unset = DNS is not managed.

    Off by default because this file is shared by the whole host (and every network
    namespace without its own /etc/netns/NAME/resolv.conf): a developer's daemon must
    never replace it. The appliance image sets ``/etc/resolv.conf``.
    """
    preflight: PreflightConfig = PreflightConfig()

    @field_validator("ports")
    @classmethod
    def _check_ports(cls, ports: list[PortConfig]) -> list[PortConfig]:
        seen: dict[str, int] = {}
        for index, port in enumerate(ports):
            if port.name in seen:
                raise ValueError(f"ports[{index}].name: must be unique, {port.name!r} is "
                                 f"also ports[{seen[port.name]}]")
            seen[port.name] = index
        statics = [(i, p.interface()) for i, p in enumerate(ports) if p.mode == "static"]
        for pos, (i, iface) in enumerate(statics):
            for j, other in statics[pos + 1:]:
                if iface.network.overlaps(other.network):
                    raise ValueError(f"ports[{j}].address must not overlap ports[{i}] "
                                     f"({other.network} overlaps {iface.network})")
        return ports
