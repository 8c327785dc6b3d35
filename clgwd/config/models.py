"""The validated, immutable configuration of the daemon.

Every section is a frozen pydantic model with ``extra="forbid"`` and strict types, so a
typo or a quoted number is an error instead of a silently ignored or coerced value.
Every key has a default, so an empty file is a working config. Sections owned by a
component (cloud link, PBX, network, ...) live in their own module next to this one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Final, Literal

from pydantic import Field

from clgwd.config.cloud import CloudConfig
from clgwd.config.monitor import InventoryConfig, MonitorConfig
from clgwd.config.network import NetworkConfig
from clgwd.config.pbx import PbxConfig, SyncConfig
from clgwd.config.sip import SipConfig
from clgwd.config.system import SystemConfig
from clgwd.config.tunnel import TunnelConfig
from clgwd.config.types import (
    AbsolutePath,
    HostName,
    IpAddressText,
    ListenPort,
    Port,
    Seconds,
    StrictModel,
)

# The base model and field types live in ``clgwd.config.types`` (no import cycle);
# they are re-exported here for sections written against ``clgwd.config.models``.
__all__ = ["DEFAULT_CONFIG_PATH", "DEFAULT_CONTROL_SOCKET", "DEFAULT_STATE_DIR",
           "AbsolutePath", "ClgwdConfig", "ControlConfig", "DaemonConfig", "HostName",
           "HttpConfig", "IpAddressText", "ListenAddress", "ListenPort", "LogLevel",
           "LoggingConfig", "Port", "Seconds", "StateConfig", "StrictModel"]

DEFAULT_CONFIG_PATH: Final = Path("/etc/clgwd/clgwd.yaml")
DEFAULT_STATE_DIR: Final = Path("/var/lib/clgwd")
DEFAULT_CONTROL_SOCKET: Final = Path("/run/clgwd/control.sock")


class ListenAddress(StrictModel):
    """One address and port the local HTTP listener binds."""

    host: IpAddressText = "0.0.0.0"
    port: ListenPort = 80


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
