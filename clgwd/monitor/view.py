"""One derived picture of the gateway for every monitoring output.

The SNMP agent, the MQTT status topic and the Prometheus series all read the same
``GatewayView``, built from the components' ``status()`` (the only way this part reads
other parts) plus the outbox depth and the active alerts from the store. The SIP trunk
list is read defensively: any component whose status details carry a ``trunks`` list
contributes its entries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from clgwd import __version__
from clgwd.component import ComponentStatus
from clgwd.store import Alert


@dataclass(frozen=True)
class TrunkView:
    name: str
    state: str
    rtt_ms: float | None
    server: str = ""


@dataclass(frozen=True)
class GatewayView:
    """What monitoring publishes; every field has a safe empty value."""

    version: str = __version__
    components: Mapping[str, str] = field(default_factory=dict)
    link_state: str = "unknown"
    last_sync_result: str = ""
    last_sync_at: float | None = None
    users_synced: int = 0
    outbox_depth: int = 0
    tunnels_configured: int = 0
    tunnels_started: int = 0
    streams: int = 0
    trunks: Sequence[TrunkView] = ()
    alerts: Sequence[Alert] = ()
    inventory_last_submitted: float | None = None
    inventory_next_submission: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "version": self.version, "components": dict(self.components),
            "link": {"state": self.link_state},
            "sync": {"last_result": self.last_sync_result or None,
                     "last_at": self.last_sync_at, "users": self.users_synced},
            "outbox": {"depth": self.outbox_depth},
            "tunnels": {"configured": self.tunnels_configured,
                        "started": self.tunnels_started, "streams": self.streams},
            "trunks": [{"name": t.name, "state": t.state, "rtt_ms": t.rtt_ms,
                        "server": t.server} for t in self.trunks],
            "alerts": [{"code": a.code, "severity": a.severity.value, "message": a.message,
                        "since": a.since} for a in self.alerts],
            "inventory": {"last_submitted": self.inventory_last_submitted,
                          "next_submission": self.inventory_next_submission},
        }


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None


def _int(value: Any) -> int:
    number = _number(value)
    return int(number) if number is not None else 0


def trunks_from(statuses: Mapping[str, ComponentStatus]) -> list[TrunkView]:
    """Trunks from any component's ``details["trunks"]`` (the SIP part's, when built)."""
    out: list[TrunkView] = []
    for status in statuses.values():
        trunks = status.details.get("trunks")
        if not isinstance(trunks, list):
            continue
        for item in trunks:
            if not isinstance(item, Mapping):
                continue
            rtt = _number(item.get("rtt_ms"))
            if rtt is None and _number(item.get("rtt")) is not None:
                rtt = float(item["rtt"]) * 1000  # seconds
            out.append(TrunkView(
                name=str(item.get("name", "")), state=str(item.get("state", "unknown")),
                rtt_ms=rtt, server=str(item.get("server") or "")))
    return out


def gateway_view(statuses: Mapping[str, ComponentStatus], *, outbox_depth: int,
                 alerts: Sequence[Alert], inventory: Mapping[str, Any] | None = None
                 ) -> GatewayView:
    """Build the view from component statuses; missing parts give empty values."""
    link = statuses.get("link")
    sync = statuses.get("sync")
    tunnel = statuses.get("tunnel")
    last = sync.details.get("last_run") if sync is not None else None
    last = last if isinstance(last, Mapping) else {}
    counts = last.get("counts")
    tunnel_details = tunnel.details if tunnel is not None else {}
    inv = inventory if inventory is not None else (
        statuses["inventory"].details if "inventory" in statuses else {})
    return GatewayView(
        components={name: s.state.value for name, s in statuses.items()},
        link_state=str(link.details.get("link_state", link.state.value)) if link else "absent",
        last_sync_result=str(last.get("result") or ""),
        last_sync_at=_number(last.get("started_at")),
        users_synced=_int(counts.get("eligible")) if isinstance(counts, Mapping) else 0,
        outbox_depth=outbox_depth,
        tunnels_configured=_int(tunnel_details.get("tunnels")),
        tunnels_started=_int(tunnel_details.get("started")),
        streams=_int(tunnel_details.get("streams")),
        trunks=trunks_from(statuses),
        alerts=tuple(alerts),
        inventory_last_submitted=_number(inv.get("last_submitted")),
        inventory_next_submission=_number(inv.get("next_submission")),
    )
