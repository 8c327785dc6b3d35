"""The validated, immutable configuration of the daemon.

Every section is a frozen pydantic model with ``extra="forbid"`` and strict types, so a
typo or a quoted number is an error instead of a silently ignored or coerced value.
Every key has a default, so an empty file is a working config. Sections owned by a
component (cloud link, PBX, network, ...) live in their own module next to this one.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

DEFAULT_CONFIG_PATH: Final = Path("/etc/clgwd/clgwd.yaml")
DEFAULT_STATE_DIR: Final = Path("/var/lib/clgwd")
DEFAULT_CONTROL_SOCKET: Final = Path("/run/clgwd/control.sock")


class StrictModel(BaseModel):
    """Base for every config model: immutable, unknown keys rejected, no type coercion."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


def _check_port(value: int) -> int:
    if not 1 <= value <= 65535:
        raise ValueError("must be 1-65535")
    return value


def _check_listen_port(value: int) -> int:
    if not 0 <= value <= 65535:
        raise ValueError("must be 0-65535 (0 picks a free port)")
    return value


def _check_host(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError("must be an IPv4 or IPv6 address") from None
    return value


def _check_absolute(value: Path) -> Path:
    if not value.is_absolute():
        raise ValueError("must be an absolute path")
    return value


Port = Annotated[int, AfterValidator(_check_port)]
"""A TCP/UDP port number, 1-65535."""

ListenPort = Annotated[int, AfterValidator(_check_listen_port)]
"""A port to bind; 0 lets the kernel pick a free one (tests, demos)."""

IpAddressText = Annotated[str, AfterValidator(_check_host)]
"""An IPv4 or IPv6 address written as text (``0.0.0.0`` and ``::`` mean all)."""

AbsolutePath = Annotated[Path, Field(strict=False), AfterValidator(_check_absolute)]
"""A filesystem path that must be absolute (relative paths depend on the CWD)."""

Seconds = Annotated[float, Field(gt=0, strict=False)]
"""A positive duration in seconds; integers are accepted."""


class ListenAddress(StrictModel):
    """One address and port the local HTTP listener binds."""

    host: IpAddressText = "0.0.0.0"
    port: ListenPort = 80


def _check_host_name(value: str) -> str:
    labels = value.rstrip(".").split(".")
    if not value or len(value) > 253 or not all(
            label and len(label) <= 63 and label.replace("-", "").isalnum()
            and label.isascii() and not label.startswith("-") for label in labels):
        raise ValueError("must be a DNS host name such as gw1.example.com")
    return value.rstrip(".").lower()


HostName = Annotated[str, AfterValidator(_check_host_name)]
"""A DNS name the gateway answers to (compared case-insensitively)."""


class HttpConfig(StrictModel):
    """The local web listeners: health, metrics, the onboarding page and its API.

    ``listen`` is plain HTTP: it answers ``/api/v1/health`` and ``/metrics`` and
    redirects everything else to HTTPS. ``tls_listen`` serves the onboarding page and
    API with the device's self-signed certificate. An empty ``tls_listen`` turns the
    onboarding page off (plain HTTP never carries the admin password).
    """

    listen: Annotated[list[ListenAddress], Field(min_length=1)] = Field(
        default_factory=lambda: [ListenAddress()]
    )
    tls_listen: list[ListenAddress] = Field(
        default_factory=lambda: [ListenAddress(port=443)]
    )
    names: list[HostName] = Field(default_factory=list)
    """Extra host names the page may be opened with (besides cloudlink.local, the host
    name and the gateway's own IPs); any other Host header is refused (DNS rebinding)."""
    session_idle_minutes: Annotated[int, Field(ge=1, le=1440)] = 30
    """A session unused for this long must log in again."""


class ControlConfig(StrictModel):
    """The local control socket used by ``clgwd status`` and other CLI commands."""

    socket: AbsolutePath = DEFAULT_CONTROL_SOCKET


class StateConfig(StrictModel):
    """Where persistent state lives and how much of it the outbox may hold."""

    dir: AbsolutePath = DEFAULT_STATE_DIR
    outbox_max_records: Annotated[int, Field(ge=100)] = 200_000
    """Upper bound of queued upstream records; an alert is raised at 80 %."""


LogLevel = Literal["debug", "info", "warning", "error"]


class LoggingConfig(StrictModel):
    """Log verbosity; ``--log-level`` on the command line overrides it."""

    level: LogLevel = "info"


class DaemonConfig(StrictModel):
    """Process lifecycle settings."""

    stop_timeout: Seconds = 10.0
    """Seconds allowed for an orderly shutdown before the process exits hard."""


from clgwd.config.cloud import CloudConfig  # noqa: E402 - sections import StrictModel

# Sections in their own modules import StrictModel and the field types above.
from clgwd.config.monitor import InventoryConfig, MonitorConfig  # noqa: E402
from clgwd.config.network import NetworkConfig  # noqa: E402
from clgwd.config.pbx import PbxConfig, SyncConfig  # noqa: E402 - needs StrictModel above
from clgwd.config.sip import SipConfig  # noqa: E402 - needs StrictModel defined above
from clgwd.config.system import SystemConfig  # noqa: E402 - needs StrictModel above
from clgwd.config.tunnel import TunnelConfig  # noqa: E402 - needs StrictModel defined above


class ClgwdConfig(StrictModel):
    """The whole configuration file."""

    state: StateConfig = StateConfig()
    http: HttpConfig = HttpConfig()
    control: ControlConfig = ControlConfig()
    logging: LoggingConfig = LoggingConfig()
    daemon: DaemonConfig = DaemonConfig()
    cloud: CloudConfig = CloudConfig()
    pbx: PbxConfig = PbxConfig()
    sync: SyncConfig = SyncConfig()
    network: NetworkConfig = NetworkConfig()
    tunnel: TunnelConfig = TunnelConfig()
    sip: SipConfig = SipConfig()
    system: SystemConfig = SystemConfig()
    monitor: MonitorConfig = MonitorConfig()
    inventory: InventoryConfig = InventoryConfig()
