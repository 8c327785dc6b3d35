"""Request bodies of the JSON API, validated the same way the page validates them.

The page checks as the technician types; these models are the authority. Each error
names the field, so the page can show it next to the input.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

# PUT /site's body is the model of the component that owns the site info (one set of rules).
from clgwd.system.site import SiteInfo as SiteInfo  # noqa: PLC0414 - re-exported

_HOST_RE: Final = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*"
                             r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


class Body(BaseModel):
    """Base of every request body: unknown keys and coerced types are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _ipv4(value: str) -> str:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise ValueError("must be an IPv4 address such as 192.168.1.10") from None
    return value


def _netmask(value: str) -> str:
    try:
        ipaddress.IPv4Network(f"0.0.0.0/{value}")
    except ValueError:
        raise ValueError("must be a subnet mask such as 255.255.255.0") from None
    return value


def _host(value: str) -> str:
    try:
        ipaddress.ip_address(value)
        return value
    except ValueError:
        pass
    if not _HOST_RE.match(value):
        raise ValueError("must be an IP address or a host name")
    return value


def _text(max_len: int, *, required: bool = True) -> object:
    return Field(min_length=1 if required else 0, max_length=max_len,
                 pattern=r"^[^\x00-\x1f\x7f]*$")


Ipv4 = Annotated[str, AfterValidator(_ipv4)]
Netmask = Annotated[str, AfterValidator(_netmask)]
Host = Annotated[str, Field(min_length=1, max_length=253), AfterValidator(_host)]
Name = Annotated[str, _text(100)]
OptionalText = Annotated[str, _text(200, required=False)]


class SetupBody(Body):
    setup_code: Annotated[str, Field(min_length=1, max_length=40)]
    password: Annotated[str, Field(min_length=1, max_length=256)]


class LoginBody(Body):
    password: Annotated[str, Field(min_length=1, max_length=256)]


class PasswordChange(Body):
    current_password: Annotated[str, Field(min_length=1, max_length=256)]
    new_password: Annotated[str, Field(min_length=1, max_length=256)]


class EthernetPort(Body):
    name: Annotated[str, Field(min_length=1, max_length=15, pattern=r"^[A-Za-z0-9_.-]+$")]
    mode: Literal["dhcp", "static"]
    address: Ipv4 | None = None
    netmask: Netmask | None = None
    gateway: Ipv4 | None = None
    dns: Annotated[list[Ipv4], Field(max_length=3)] = Field(default_factory=list)
    lease: dict[str, Any] | None = Field(default=None, description=(
        "Read-only (GET /network): a DHCP port's current lease; ignored when sent back"))

    @model_validator(mode="after")
    def _static_is_complete(self) -> EthernetPort:
        if self.mode == "dhcp":
            return self
        if self.address is None or self.netmask is None:
            raise ValueError("a static port needs address and netmask")
        net = ipaddress.IPv4Network(f"{self.address}/{self.netmask}", strict=False)
        addr = ipaddress.IPv4Address(self.address)
        if net.prefixlen < 31 and addr in (net.network_address, net.broadcast_address):
            raise ValueError(f"address {addr} is the network or broadcast address of {net}")
        if self.gateway is not None and ipaddress.IPv4Address(self.gateway) not in net:
            raise ValueError(f"default gateway {self.gateway} is not in subnet {net}")
        if not self.dns:
            raise ValueError("a static port needs at least one DNS server")
        return self


class NetworkApply(Body):
    ports: Annotated[list[EthernetPort], Field(min_length=1, max_length=8)]


class NetworkConfirm(Body):
    token: Annotated[str, Field(min_length=1, max_length=200)]


class CloudEnroll(Body):
    account_id: Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
    token: Annotated[str, Field(min_length=8, max_length=4096)]
    cloud_url: str | None = None
    """The cloud's address (https://host[:port]); null: the address in force. Checked
    (and its length limited) by the link, like the config file's ``cloud.url``, so a
    bad one gets ``invalid_cloud_url`` with the reason."""
    cloud_ca_pem: str | None = None
    """PEM CA certificate(s) of a private cloud; null or "": none pasted. Checked by the
    link (``invalid_cloud_ca``); the request body limit bounds its size."""


class CloudProxy(Body):
    """``cloud.proxy.set``: ``default`` = file/environment, ``none`` = direct, ``manual``."""

    mode: Literal["default", "none", "manual"]
    host: Annotated[str, Field(max_length=253)] | None = None
    port: Annotated[int, Field(ge=1, le=65535)] = 3128
    username: Annotated[str, Field(max_length=256)] | None = None
    password: Annotated[str | None, Field(max_length=1024)] = None
    """None keeps the stored password; "" removes it; never returned."""
    no_proxy: list[Annotated[str, Field(min_length=1, max_length=253)]] = Field(
        default_factory=list, max_length=64)


class PbxSettings(Body):
    type: Annotated[str, Field(min_length=1, max_length=40)]
    name: Name
    address: Host | None = None
    """Required for network types; a file type (``csv``, ``ldif``) has none."""
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    username: Annotated[str, _text(200, required=False)] = ""
    password: Annotated[str | None, Field(max_length=1024)] = None
    """None keeps the stored password; the API never returns it (only ``password_set``)."""
    options: dict[Annotated[str, Field(max_length=40)],
                  Annotated[str, Field(max_length=500)]] = Field(default_factory=dict)


class SyncSchedule(Body):
    interval_minutes: Annotated[int, Field(ge=5, le=1440)] = 20


SetId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9a-f]+$")]


class KeepMissing(Body):
    """"Keep these users": the list shown (``set_id`` of ``GET /sync/missing``)."""

    set_id: SetId


class DeleteMissing(Body):
    """"Delete them once": the list shown, and the number of users typed to confirm."""

    set_id: SetId
    confirm: Annotated[int, Field(ge=0, le=10**9)]


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class UpdateSchedule(Body):
    frequency: Literal["daily", "weekly"]
    weekdays: Annotated[list[Weekday], Field(max_length=7)] = Field(default_factory=list)
    time: Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]
    timezone: Annotated[str, Field(min_length=1, max_length=64,
                                   pattern=r"^[A-Za-z][A-Za-z0-9_+\-/]*$")]

    @model_validator(mode="after")
    def _weekly_needs_days(self) -> UpdateSchedule:
        if self.frequency == "weekly" and not self.weekdays:
            raise ValueError("a weekly schedule needs at least one weekday")
        return self


class TunnelAction(Body):
    """Start or stop one tunnel by ``name``, or every tunnel with ``all: true``.

    The tunnel part (docs/config-tunnel.md) caps ``expiry`` at the tunnel's own limit.
    """

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$")] | None = None
    all: bool = False
    expiry: Annotated[int, Field(ge=1, le=43200)] | None = None

    @model_validator(mode="after")
    def _one_target(self) -> TunnelAction:
        if self.all == (self.name is not None):
            raise ValueError("give either name or all: true")
        return self


class TraceCalls(Body):
    duration_minutes: Annotated[int, Field(ge=1, le=60)] = 10


class TrunkSet(Body):
    """``sip.trunks.set`` from the page: exactly one of ``trunk`` (with ``replace`` to
    edit), ``remove`` or ``app_setup``; the trunk part validates the contents and names
    the field (docs/sip-trunks.md)."""

    trunk: dict[str, Any] | None = None
    replace: bool = False
    remove: Annotated[str, Field(max_length=63)] | None = None
    app_setup: dict[str, Any] | None = None


class TrunkName(Body):
    name: Annotated[str, Field(min_length=1, max_length=63)]


class FactoryReset(Body):
    confirm: Annotated[str, Field(max_length=20)]


class Empty(Body):
    """No parameters."""


# -- monitoring (the Advanced page's SNMP, MQTT and inventory forms; docs/monitoring.md) ----
# Shapes and sizes only: the monitor and inventory parts validate the values against the
# config models and name the key (``monitor.snmp.users[0].auth_key: ...``). A secret that
# is null keeps the one in force; "" removes an optional one (community, broker password).

SecretText = Annotated[str | None, Field(max_length=1024)]
Endpoint = Annotated[str, Field(min_length=1, max_length=64)]


class SnmpUserBody(Body):
    name: Annotated[str, Field(min_length=1, max_length=32)]
    auth_protocol: Literal["sha256", "sha384", "sha512", "sha224"] = "sha256"
    auth_key: SecretText = None
    priv_protocol: Literal["aes128", "aes192", "aes256"] = "aes128"
    priv_key: SecretText = None


class TrapTargetBody(Body):
    address: Endpoint
    community: SecretText = None
    user: Annotated[str, Field(min_length=1, max_length=32)] | None = None


class MonitorSnmp(Body):
    """``monitor.set {"snmp": ...}``: the agent's addresses, credentials and managers."""

    listen: Annotated[list[Endpoint], Field(max_length=8)] = Field(default_factory=list)
    community: SecretText = None
    users: Annotated[list[SnmpUserBody], Field(max_length=16)] = Field(default_factory=list)
    traps: Annotated[list[TrapTargetBody], Field(max_length=8)] = Field(
        default_factory=list)
    location: Annotated[str, Field(max_length=255)] = ""
    contact: Annotated[str, Field(max_length=255)] = ""


class MonitorMqtt(Body):
    """``monitor.set {"mqtt": ...}``: the broker, its credentials and the topics."""

    url: Annotated[str, Field(min_length=1, max_length=300)] | None = None
    username: Annotated[str, Field(max_length=256)] = ""
    password: SecretText = None
    ca_file: Annotated[str, Field(min_length=1, max_length=4096)] | None = None
    topic_prefix: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class SnmpPlatformBody(Body):
    name: Annotated[str, Field(min_length=1, max_length=64)]
    address: Endpoint
    community: SecretText = None
    user: SnmpUserBody | None = None
    admin_url: Annotated[str, Field(max_length=255)] = ""


class InventorySettings(Body):
    """``inventory.settings.set``: the schedule (seconds) and the LAN platforms."""

    interval: Annotated[float, Field(ge=60, le=7 * 86400, strict=False)] = 3600.0
    platforms: Annotated[list[SnmpPlatformBody], Field(max_length=64)] = Field(
        default_factory=list)


class MonitoringForget(Body):
    """Drop what the page saved for these sections: the config file's apply again."""

    sections: Annotated[list[Literal["snmp", "mqtt", "inventory"]],
                        Field(min_length=1, max_length=3)]
