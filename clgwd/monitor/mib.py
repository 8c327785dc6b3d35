"""The agent's objects: SNMPv2-MIB's system group and the CLGWD-MIB subtree.

``mibs/CLGWD-MIB.txt`` describes the same OIDs for managers; a test walks the agent
with net-snmp loading that file, so the two cannot drift apart silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from clgwd.monitor.snmp import (
    CLGWD_MIB,
    CLGWD_NOTIFICATIONS,
    CLGWD_OBJECTS,
    SYSTEM,
    Oid,
    Value,
    counter,
    gauge,
    integer,
    object_id,
    text,
    ticks,
)
from clgwd.monitor.view import GatewayView

GENERAL: Final[Oid] = (*CLGWD_OBJECTS, 1)
TRUNK_ENTRY: Final[Oid] = (*CLGWD_OBJECTS, 2, 1)
ALERT_ENTRY: Final[Oid] = (*CLGWD_OBJECTS, 3, 1)
NOTIFY_OBJECTS: Final[Oid] = (*CLGWD_OBJECTS, 4)
ALERT_RAISED: Final[Oid] = (*CLGWD_NOTIFICATIONS, 1)
ALERT_CLEARED: Final[Oid] = (*CLGWD_NOTIFICATIONS, 2)
MAX_TEXT: Final = 255
MAX_ROWS: Final = 256


@dataclass(frozen=True)
class SystemInfo:
    """SNMPv2-MIB system group values that do not change while the agent runs."""

    descr: str
    name: str
    contact: str
    location: str
    started: float
    """``time.monotonic()`` when the agent started (sysUpTime counts from it)."""


def _clip(value: str) -> Value:
    return text(value[:MAX_TEXT])


def _unix(value: float | None) -> Value:
    return gauge(int(value) if value else 0)


def objects(view: GatewayView, system: SystemInfo, now: float,
            auth_failures: int) -> list[tuple[Oid, Value]]:
    """Every (oid, value) the agent serves, unsorted."""
    out: list[tuple[Oid, Value]] = [
        ((*SYSTEM, 1, 0), _clip(system.descr)),
        ((*SYSTEM, 2, 0), object_id(CLGWD_MIB)),
        ((*SYSTEM, 3, 0), ticks(now - system.started)),
        ((*SYSTEM, 4, 0), _clip(system.contact)),
        ((*SYSTEM, 5, 0), _clip(system.name)),
        ((*SYSTEM, 6, 0), _clip(system.location)),
        ((*SYSTEM, 7, 0), integer(72)),
        ((*GENERAL, 1, 0), _clip(view.version)),
        ((*GENERAL, 2, 0), _clip(view.link_state)),
        ((*GENERAL, 3, 0), _clip(view.last_sync_result)),
        ((*GENERAL, 4, 0), _unix(view.last_sync_at)),
        ((*GENERAL, 5, 0), gauge(view.users_synced)),
        ((*GENERAL, 6, 0), gauge(view.outbox_depth)),
        ((*GENERAL, 7, 0), gauge(view.tunnels_started)),
        ((*GENERAL, 8, 0), gauge(view.streams)),
        ((*GENERAL, 9, 0), gauge(len(view.alerts))),
        ((*GENERAL, 10, 0), counter(auth_failures)),
        ((*GENERAL, 11, 0), _unix(view.inventory_last_submitted)),
    ]
    for row, trunk in enumerate(view.trunks[:MAX_ROWS], start=1):
        rtt = -1 if trunk.rtt_ms is None else round(trunk.rtt_ms)
        out += [((*TRUNK_ENTRY, 1, row), integer(row)),
                ((*TRUNK_ENTRY, 2, row), _clip(trunk.name)),
                ((*TRUNK_ENTRY, 3, row), _clip(trunk.state)),
                ((*TRUNK_ENTRY, 4, row), integer(rtt)),
                ((*TRUNK_ENTRY, 5, row), _clip(trunk.server))]
    for row, alert in enumerate(view.alerts[:MAX_ROWS], start=1):
        out += [((*ALERT_ENTRY, 1, row), integer(row)),
                ((*ALERT_ENTRY, 2, row), _clip(alert.code)),
                ((*ALERT_ENTRY, 3, row), _clip(alert.severity.value)),
                ((*ALERT_ENTRY, 4, row), _clip(alert.message)),
                ((*ALERT_ENTRY, 5, row), _unix(alert.since))]
    return out


def alert_notification(state: str, code: str, severity: str,
                       message: str) -> tuple[Oid, Sequence[tuple[Oid, Value]]]:
    """The notification OID and varbinds for an alert raised or cleared."""
    return (ALERT_RAISED if state == "raised" else ALERT_CLEARED, [
        ((*NOTIFY_OBJECTS, 1, 0), _clip(code)),
        ((*NOTIFY_OBJECTS, 2, 0), _clip(severity)),
        ((*NOTIFY_OBJECTS, 3, 0), _clip(message)),
    ])
