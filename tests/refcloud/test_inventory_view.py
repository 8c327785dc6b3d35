"""The reference cloud's System Inventory view: Platforms and Applications tables."""

from __future__ import annotations

import json
import sqlite3

from clgwd.refcloud import view

DOC = {
    "host": {"name": "gw-1", "platform_type": "linux", "platform_name": "KVM",
             "system_family": "linux", "os": "Debian GNU/Linux 12"},
    "applications": [
        {"name": "clgwd", "type": "cloudlink-gateway", "version": "0.1.0", "platform": "gw-1"},
        {"name": "Lab PBX", "type": "freepbx", "version": None, "platform": "192.0.2.5"},
        {"name": "carrier", "type": "sip-trunk-peer", "version": "<Kamailio 5.6>",
         "platform": None}],
    "platforms": [
        {"name": "mivb-1", "address": "192.0.2.30:161", "reachable": True, "host": "mivb",
         "platform_type": "mitel", "system_family": "linux", "description": "MiVB",
         "admin_url": "https://192.0.2.30/"},
        {"name": "dead", "address": "192.0.2.31:161", "reachable": False,
         "error": "No SNMP response received before timeout", "admin_url": None}],
    "collected_at": 1_800_000_000.0,
}


def _rows() -> tuple[sqlite3.Row, sqlite3.Row]:
    db = sqlite3.connect(":memory:")
    db.row_factory = sqlite3.Row
    gw = db.execute("SELECT 'gw-id' AS id, 'acme' AS account_id, 1 AS online, 0 AS revoked,"
                    " NULL AS last_seen, '0.1.0' AS version, NULL AS cert_not_after,"
                    " NULL AS status, NULL AS sync_result").fetchone()
    inv = db.execute("SELECT ? AS payload, 1800000000.0 AS updated_at",
                     (json.dumps(DOC),)).fetchone()
    return gw, inv


def _page(tunnels: list[dict[str, object]], launches: list[dict[str, object]]) -> str:
    gw, inv = _rows()
    return view.render_gateway(gw, [], [], inv, [], tunnels=tunnels, launches=launches)


def test_platforms_and_applications_tables_with_vendor_columns() -> None:
    """Both tables carry the vendor's columns; the unreachable platform stays listed and
    the trunk peer's Server header is escaped."""
    page = _page([], [])
    for column in ("Platform type", "Platform name", "Application types", "System family",
                   "Licence", "SWA status", "Platform ID", "Portal", "Application type"):
        assert f"<th>{column}</th>" in page
    assert "mivb-1" in page and "mitel" in page
    assert "unreachable: No SNMP response" in page
    assert "&lt;Kamailio 5.6&gt;" in page and "<Kamailio" not in page


def test_launch_link_only_for_a_tunnel_target() -> None:
    """The platform whose admin UI is a tunnel's target gets its Launch URL."""
    tunnels = [{"name": "mivb-admin", "host": "192.0.2.30", "ports": [443], "status": "started"}]
    launches = [{"tunnel": "mivb-admin", "url": "http://127.0.0.1:40001/"}]
    assert '<a href="http://127.0.0.1:40001/">Launch</a>' in _page(tunnels, launches)
    assert "Launch: start tunnel mivb-admin" in _page(tunnels, [])
    other = [{"name": "x", "host": "192.0.2.99", "ports": ["400-500"], "status": "started"}]
    assert "Launch" not in _page(other, []).split("<h3>Applications</h3>")[0].split(
        "<h3>Platforms</h3>")[1]
