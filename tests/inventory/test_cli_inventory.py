"""``clgwd inventory --json`` against a running daemon, with net-snmp's snmpd as a LAN
platform polled over v2c and v3, and one unreachable host."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clgwd.inventory.collect import collect_local, stable_view
from tests.daemon.proc import DaemonProcess, run_cli, write_config
from tests.monitor.peers import free_udp_port

pytestmark = pytest.mark.peers


async def test_inventory_json_reports_host_apps_and_platforms(tmp_path: Path, snmpd: int
                                                              ) -> None:
    """The document has the acceptance fields; snmpd is reached over v2c and v3; a host
    that does not answer is listed as unreachable, not dropped."""
    dead = free_udp_port()
    extra = (
        "pbx: {type: csv, name: Lab PBX, file: {path: /nonexistent.csv}}\n"
        "inventory:\n  poll_timeout: 0.5\n  platforms:\n"
        f"    - {{name: v2c-host, address: '127.0.0.1:{snmpd}', community: lan-ro}}\n"
        f"    - name: v3-host\n      address: '127.0.0.1:{snmpd}'\n"
        "      user: {name: lanv3, auth_key: authpass123, priv_key: privpass123}\n"
        f"    - {{name: dead-host, address: '127.0.0.1:{dead}', community: lan-ro}}\n")
    config = write_config(tmp_path, extra=extra)
    daemon = await DaemonProcess.start(config)
    try:
        await daemon.wait_for_line("Inventory queued")
        code, out, err = await run_cli("inventory", "--json", "--config", str(config))
        assert code == 0, err
        doc = json.loads(out)
        for key in ("host", "memory", "processor", "partitions", "applications",
                    "last_submitted", "next_submission"):
            assert key in doc
        assert doc["last_submitted"] and doc["next_submission"] > doc["last_submitted"]
        assert doc["memory"]["total_bytes"] > 0 and doc["processor"]["cores"] >= 1
        assert any(p["mount_point"] == "/" for p in doc["partitions"])
        apps = {a["name"]: a for a in doc["applications"]}
        assert apps["clgwd"]["version"] and apps["Lab PBX"]["type"] == "csv"
        hosts = {p["name"]: p for p in doc["platforms"]}
        for name in ("v2c-host", "v3-host"):
            assert hosts[name]["reachable"], hosts[name]["error"]
            assert hosts[name]["host"] == "lan-platform-1"
            assert hosts[name]["sys_object_id"].startswith("1.3.6.1.4.1.8072")
            assert hosts[name]["storage"]
        assert hosts["dead-host"]["reachable"] is False and hosts["dead-host"]["error"]
        code, out, _ = await run_cli("status", "--config", str(config))
        assert "platforms unreachable over SNMP: dead-host" in out
    finally:
        await daemon.kill()


async def test_inventory_text_view(tmp_path: Path) -> None:
    """Without --json the vendor's Submission line and columns are printed."""
    config = write_config(tmp_path)
    daemon = await DaemonProcess.start(config)
    try:
        await daemon.wait_for_line("Inventory queued")
        code, out, err = await run_cli("inventory", "--config", str(config))
        assert code == 0, err
        assert out.startswith("Inventory Report Submission: Last ")
        assert "cloudlink-gateway" in out
    finally:
        await daemon.kill()


async def test_inventory_without_daemon_says_so(tmp_path: Path) -> None:
    """With nothing on the control socket the command exits 69 with a clear message."""
    code, _, err = await run_cli("inventory", "--socket", str(tmp_path / "none.sock"))
    assert code == 69 and "not running" in err


def test_collection_is_fast() -> None:
    """Collecting the local facts takes well under 100 ms."""
    import time

    collect_local()
    start = time.perf_counter()
    collect_local()
    assert time.perf_counter() - start < 0.1


def test_change_check_ignores_time_and_live_measurements() -> None:
    """Uptime, free memory and used space do not count as a change; a new partition does."""
    doc = {**collect_local(), "applications": [], "platforms": [], "collected_at": 1.0}
    later = json.loads(json.dumps(doc))
    later["host"]["uptime_seconds"] += 60
    later["memory"]["available_bytes"] -= 4096
    later["collected_at"] = 2.0
    for part in later["partitions"]:
        part["used_bytes"] += 1
    assert stable_view(doc) == stable_view(later)
    later["partitions"].append({"device": "/dev/sdz1", "mount_point": "/data"})
    assert stable_view(doc) != stable_view(later)
