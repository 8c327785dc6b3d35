"""The gateway view and the objects the agent serves, from component statuses alone."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from clgwd.component import ComponentState, ComponentStatus
from clgwd.config.monitor import split_host_port
from clgwd.monitor import mib
from clgwd.monitor.view import gateway_view, trunks_from
from clgwd.store import Alert, Severity

TRUNK = (1, 3, 6, 1, 4, 1, 99999, 1, 1, 2, 1)
SYSTEM = mib.SystemInfo(descr="d", name="gw", contact="", location="", started=0.0)


def _status(**details: object) -> ComponentStatus:
    return ComponentStatus(ComponentState.RUNNING, "", 0.0, details)


def test_trunks_read_defensively_from_any_component() -> None:
    """Trunk entries come from any ``details["trunks"]``; junk entries are skipped and
    an RTT in seconds is turned into milliseconds."""
    statuses = {"sip": _status(trunks=[
        {"name": "carrier-a", "state": "up", "rtt_ms": 12.5, "server": "Kamailio"},
        {"name": "carrier-b", "state": "down", "rtt": 0.25},
        "garbage", 42]), "other": _status(trunks="not a list")}
    trunks = trunks_from(statuses)
    assert [(t.name, t.state, t.rtt_ms, t.server) for t in trunks] == [
        ("carrier-a", "up", 12.5, "Kamailio"), ("carrier-b", "down", 250.0, "")]


def test_view_from_link_sync_tunnel_statuses() -> None:
    """Link state, last sync and tunnel counts are read from the parts' status details."""
    statuses = {
        "link": _status(link_state="online"),
        "sync": _status(last_run={"result": "ok", "started_at": 1000.0,
                                  "counts": {"eligible": 15}}),
        "tunnel": _status(tunnels=2, started=1, streams=3),
        "inventory": _status(last_submitted=2000.0, next_submission=5600.0),
    }
    alert = Alert("sync.apply_failed", Severity.WARNING, "x", 1500.0)
    view = gateway_view(statuses, outbox_depth=7, alerts=[alert])
    assert (view.link_state, view.last_sync_result, view.users_synced) == ("online", "ok", 15)
    assert (view.tunnels_started, view.streams, view.outbox_depth) == (1, 3, 7)
    assert view.inventory_next_submission == 5600.0
    assert view.as_json()["alerts"][0]["code"] == "sync.apply_failed"


def test_missing_parts_give_empty_values() -> None:
    """With no link, sync or tunnel component the view is still complete."""
    view = gateway_view({}, outbox_depth=0, alerts=[])
    assert view.link_state == "absent" and view.last_sync_at is None and not view.trunks


def test_trunk_and_alert_rows_in_the_agent_objects() -> None:
    """Each trunk is a row of clgwdTrunkTable (RTT -1 when unknown); strings are clipped."""
    statuses = {"sip": _status(trunks=[{"name": "a" * 400, "state": "up"}])}
    view = gateway_view(statuses, outbox_depth=0, alerts=[])
    objects = dict(mib.objects(view, SYSTEM, 10.0, 3))
    assert objects[(*TRUNK, 4, 1)].value == -1
    assert len(str(objects[(*TRUNK, 2, 1)].value)) == mib.MAX_TEXT
    assert objects[(1, 3, 6, 1, 2, 1, 1, 3, 0)].value == 1000  # sysUpTime: 10 s in ticks


@given(st.ip_addresses(), st.integers(min_value=0, max_value=65535))
def test_host_port_round_trip(address: object, port: int) -> None:
    """Every IPv4/IPv6 address with a port parses back to itself."""
    host = str(address)
    text = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    assert split_host_port(text) == (host, port)


@given(st.text(max_size=30))
def test_host_port_rejects_or_parses(text: str) -> None:
    """Arbitrary text either parses or raises ValueError in words, nothing else."""
    try:
        host, port = split_host_port(text)
    except ValueError as err:
        assert str(err)
    else:
        assert 0 <= port <= 65535 and host
