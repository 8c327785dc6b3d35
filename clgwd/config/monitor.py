"""Config sections ``monitor`` (SNMP agent, MQTT, metrics) and ``inventory``.

Everything is off by default: no SNMP socket is bound until ``monitor.snmp.listen``
names an address, no broker is contacted until ``monitor.mqtt.url`` is set, and no LAN
platform is polled until ``inventory.platforms`` lists one. Communities, v3 keys and the
broker password are ``Secret`` values (``***`` in logs, dumps and API answers).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Final, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator

from clgwd.config.secret import Secret
from clgwd.config.types import AbsolutePath, Seconds, StrictModel

MIN_V3_KEY_LENGTH: Final = 8
"""RFC 3414 2.6: a USM password is at least 8 characters."""
_USER = re.compile(r"[A-Za-z0-9_.@-]{1,32}")
_TOPIC_PREFIX = re.compile(r"[^#+\x00]{1,200}")


def _split_host_port(value: str) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` -> (host, port); raises ValueError in words."""
    if value.startswith("["):
        host, sep, port = value[1:].partition("]:")
    else:
        host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError("must be host:port, e.g. 127.0.0.1:1161 or [::1]:1161")
    number = int(port)
    if not 0 <= number <= 65535:
        raise ValueError("port must be 0-65535")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError("host must be an IPv4 or IPv6 address") from None
    return host, number


def split_host_port(value: str) -> tuple[str, int]:
    """The (host, port) of an already validated ``host:port`` value."""
    return _split_host_port(value)


def _check_endpoint(value: str) -> str:
    _split_host_port(value)
    return value


def _check_remote_endpoint(value: str) -> str:
    _, port = _split_host_port(value)
    if port == 0:
        raise ValueError("port must be 1-65535")
    return value


Endpoint = Annotated[str, AfterValidator(_check_endpoint)]
"""An address to bind, ``host:port`` (port 0 picks a free one)."""
RemoteEndpoint = Annotated[str, AfterValidator(_check_remote_endpoint)]
"""An address to send to, ``host:port``."""


def _check_user(value: str) -> str:
    if not _USER.fullmatch(value):
        raise ValueError("must be 1-32 letters, digits, '_', '.', '@' or '-'")
    return value


def _check_v3_key(value: Secret) -> Secret:
    if len(value.reveal()) < MIN_V3_KEY_LENGTH:
        raise ValueError(f"must be at least {MIN_V3_KEY_LENGTH} characters (RFC 3414)")
    return value


def _check_community(value: Secret) -> Secret:
    text = value.reveal()
    if not 1 <= len(text) <= 64 or not text.isprintable():
        raise ValueError("must be 1-64 printable characters")
    return value


UserName = Annotated[str, AfterValidator(_check_user)]
V3Key = Annotated[Secret, AfterValidator(_check_v3_key)]
Community = Annotated[Secret, AfterValidator(_check_community)]
AuthProtocol = Literal["sha256", "sha384", "sha512", "sha224"]
PrivProtocol = Literal["aes128", "aes192", "aes256"]


class SnmpUser(StrictModel):
    """One SNMPv3 user: authPriv only (authentication SHA-2, privacy AES)."""

    name: UserName
    auth_protocol: AuthProtocol = "sha256"
    auth_key: V3Key
    priv_protocol: PrivProtocol = "aes128"
    priv_key: V3Key


class TrapTarget(StrictModel):
    """A manager told about alerts: a v2c trap with ``community``, or a v3 inform as
    ``user`` (one of ``monitor.snmp.users``)."""

    address: RemoteEndpoint
    community: Community | None = None
    user: UserName | None = None

    @model_validator(mode="after")
    def _one_credential(self) -> TrapTarget:
        if (self.community is None) == (self.user is None):
            raise ValueError("set exactly one of community (v2c trap) or user (v3 inform)")
        return self


class SnmpAgentConfig(StrictModel):
    """The SNMP agent: SNMPv2-MIB system group plus the CLGWD-MIB subtree, read-only."""

    listen: Annotated[list[Endpoint], Field(max_length=8)] = Field(default_factory=list)
    """UDP addresses to answer on (``host:port``); empty: the agent is off."""
    community: Community | None = None
    """SNMPv2c read-only community; unset: v2c is refused (v3 only)."""
    users: Annotated[list[SnmpUser], Field(max_length=16)] = Field(default_factory=list)
    """SNMPv3 users (authPriv)."""
    traps: Annotated[list[TrapTarget], Field(max_length=8)] = Field(default_factory=list)
    """Managers that get a notification when an alert is raised or cleared."""
    max_repetitions: Annotated[int, Field(ge=1, le=1000)] = 50
    """Upper bound of the variable bindings one GETBULK answer carries."""
    location: Annotated[str, Field(max_length=255)] = ""
    """sysLocation."""
    contact: Annotated[str, Field(max_length=255)] = ""
    """sysContact."""

    @model_validator(mode="after")
    def _consistent(self) -> SnmpAgentConfig:
        names = [u.name for u in self.users]
        if len(set(names)) != len(names):
            raise ValueError("users: each name may appear once")
        for target in self.traps:
            if target.user is not None and target.user not in names:
                raise ValueError(f"traps: user {target.user!r} is not one of users")
        if self.listen and self.community is None and not self.users:
            raise ValueError("listen is set but neither community nor users is: nobody "
                             "could query the agent")
        return self


def _check_mqtt_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError("must be mqtt://host:port or mqtts://host:port")
    if parts.username or parts.password:
        raise ValueError("put the user name and password in username/password, not the URL")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must be mqtt://host:port or mqtts://host:port without a path")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("must have a valid port number") from None
    return value


def _check_topic_prefix(value: str) -> str:
    if not _TOPIC_PREFIX.fullmatch(value) or value.startswith("/") or value.endswith("/"):
        raise ValueError("must be an MQTT topic without wildcards (+, #) and without a "
                         "leading or trailing /")
    return value


MqttUrl = Annotated[str, AfterValidator(_check_mqtt_url)]
TopicPrefix = Annotated[str, AfterValidator(_check_topic_prefix)]


class MqttConfig(StrictModel):
    """Publishing status and events to an MQTT broker (docs/monitoring.md)."""

    url: MqttUrl | None = None
    """``mqtt://host:port`` (default port 1883) or ``mqtts://host:port`` (8883); unset: off."""
    username: Annotated[str, Field(max_length=256)] = ""
    password: Secret | None = None
    ca_file: AbsolutePath | None = None
    """PEM CA bundle that signs the broker's certificate (mqtts); default: system store."""
    topic_prefix: TopicPrefix | None = None
    """Default ``clgwd/<gateway name>``; the status topic is ``<prefix>/status``."""
    status_interval: Seconds = 60.0
    """Seconds between status publications when nothing changed."""
    keepalive: Annotated[int, Field(ge=5, le=3600)] = 60


class MonitorConfig(StrictModel):
    """Local monitoring: the SNMP agent and MQTT publishing."""

    snmp: SnmpAgentConfig = SnmpAgentConfig()
    mqtt: MqttConfig = MqttConfig()


class SnmpPlatform(StrictModel):
    """A LAN platform (PBX, media server, ...) polled over SNMP for the inventory."""

    name: Annotated[str, Field(min_length=1, max_length=64)]
    address: RemoteEndpoint
    community: Community | None = None
    user: SnmpUser | None = None
    admin_url: Annotated[str, Field(max_length=255)] = ""
    """Where the platform's admin UI is (``https://host:port``): the cloud offers a Launch
    link when a tunnel target allows it."""

    @model_validator(mode="after")
    def _one_credential(self) -> SnmpPlatform:
        if (self.community is None) == (self.user is None):
            raise ValueError("set exactly one of community (v2c) or user (v3)")
        return self


class InventoryConfig(StrictModel):
    """What the inventory reports upstream and how often."""

    interval: Seconds = 3600.0
    """Seconds between scheduled collections (a submission is made only on change)."""
    platforms: Annotated[list[SnmpPlatform], Field(max_length=64)] = Field(default_factory=list)
    poll_timeout: Annotated[float, Field(gt=0, le=30, strict=False)] = 2.0
    """Seconds one SNMP request to a platform may take before the platform counts as
    unreachable."""
