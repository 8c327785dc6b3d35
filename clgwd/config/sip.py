"""Config section ``sip``: the gateway's SIP ports and the support call trace.

The ports say where the customer's SIP signalling runs (the PBX, trunks and phones
behind the gateway); the call trace (``trace.calls``) captures exactly those ports, so
a trace holds signalling and not the rest of the LAN's traffic.
"""

from __future__ import annotations

from typing import Annotated, Final

from pydantic import Field, model_validator

from clgwd.config.network import InterfaceName
from clgwd.config.types import Port, StrictModel

ANY_INTERFACE: Final = "any"


class SipTraceConfig(StrictModel):
    """Where and how much ``trace.calls`` captures."""

    interfaces: Annotated[list[InterfaceName], Field(min_length=1, max_length=8)] = Field(
        default_factory=lambda: [ANY_INTERFACE])
    """Interfaces to capture on (one tcpdump and one file each); ``any`` is tcpdump's
    pseudo-interface for all of them."""
    max_file_mb: Annotated[int, Field(ge=1, le=1024)] = 50
    """Size cap of one capture file in MiB: the trace stops when it is reached."""
    keep: Annotated[int, Field(ge=1, le=50)] = 5
    """Finished captures kept under ``<state dir>/sip-traces``; older ones are deleted."""
    allow_cloud: bool = True
    """Whether the cloud may start and stop a trace (``trace.calls``/``trace.stop``), as
    the vendor's Advanced page does, and fetch a finished capture (``trace.fetch``)."""
    fetch_max_mb: Annotated[int, Field(ge=1, le=1024)] = 50
    """Largest capture ``trace.fetch`` delivers upstream, in MiB."""


class SipMonitorConfig(StrictModel):
    """Defaults of the trunk health checks (OPTIONS); a trunk may set its own interval."""

    interval: Annotated[float, Field(ge=1, le=3600, strict=False)] = 30.0
    """Seconds between two OPTIONS to one trunk (default for new trunks)."""
    timeout: Annotated[float, Field(ge=0.2, le=60, strict=False)] = 5.0
    """Seconds to wait for the final answer (default for new trunks)."""
    down_after: Annotated[int, Field(ge=1, le=100)] = 3
    """Failed checks in a row before a trunk counts as down."""
    up_after: Annotated[int, Field(ge=1, le=100)] = 2
    """Successful checks in a row before a down trunk counts as up again."""
    max_trunks: Annotated[int, Field(ge=1, le=5000)] = 1000
    """Most trunks the gateway accepts (each costs one OPTIONS per interval)."""


class SipConfig(StrictModel):
    """The SIP signalling ports (UDP, TCP, TLS) and the call trace settings."""

    udp_ports: Annotated[list[Port], Field(max_length=16)] = Field(
        default_factory=lambda: [5060])
    tcp_ports: Annotated[list[Port], Field(max_length=16)] = Field(
        default_factory=lambda: [5060])
    tls_ports: Annotated[list[Port], Field(max_length=16)] = Field(
        default_factory=lambda: [5061])
    trace: SipTraceConfig = SipTraceConfig()
    monitor: SipMonitorConfig = SipMonitorConfig()

    @model_validator(mode="after")
    def _some_port(self) -> SipConfig:
        if not (self.udp_ports or self.tcp_ports or self.tls_ports):
            raise ValueError("at least one of udp_ports, tcp_ports, tls_ports must list a port")
        return self

    def capture_filter(self) -> str:
        """The tcpdump (BPF) filter for the SIP ports: TLS runs over TCP."""
        parts = []
        tcp = sorted({*self.tcp_ports, *self.tls_ports})
        if self.udp_ports:
            parts.append("(udp and (" + " or ".join(f"port {p}" for p in sorted(
                set(self.udp_ports))) + "))")
        if tcp:
            parts.append("(tcp and (" + " or ".join(f"port {p}" for p in tcp) + "))")
        return " or ".join(parts)
