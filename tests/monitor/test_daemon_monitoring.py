"""Monitoring in a running daemon: /metrics series, reload turning the agent on, a
LAN host that answers garbage."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import aiohttp
import pytest

from tests.daemon.proc import DaemonProcess, run_cli, write_config
from tests.monitor.peers import COMMUNITY, free_udp_port, netsnmp, snmp_yaml

pytestmark = pytest.mark.peers
SERIES = ("clgwd_sync_last_run_ok", "clgwd_link_connected", "clgwd_outbox_depth_records",
          "clgwd_tunnel_started_tunnels", "clgwd_tunnel_open_streams", "clgwd_sip_trunk_up",
          "clgwd_sip_trunk_last_rtt_seconds", "clgwd_alert_active",
          "clgwd_inventory_last_submitted_timestamp_seconds",
          "clgwd_inventory_next_submission_timestamp_seconds",
          "clgwd_snmp_auth_failures_total", "clgwd_mqtt_connected")


async def _http_port(config: Path) -> int:
    code, out, err = await run_cli("status", "--json", "--config", str(config))
    assert code == 0, err
    return int(json.loads(out)["components"]["http"]["message"].split(",")[0].rsplit(":")[1])


async def test_metrics_has_the_monitoring_series(tmp_path: Path) -> None:
    """/metrics lists every documented series; the inventory time is set, the link is
    not connected, the wrong-community request is counted."""
    port = free_udp_port()
    config = write_config(tmp_path, extra=snmp_yaml(port))
    daemon = await DaemonProcess.start(config)
    try:
        await daemon.wait_for_line("Inventory queued")
        await netsnmp(tmp_path, "snmpget", "-v2c", "-c", "wrong", "-t", "0.3", "-r", "0",
                      f"127.0.0.1:{port}", "1.3.6.1.2.1.1.5.0")
        http = await _http_port(config)
        async with aiohttp.ClientSession() as session, \
                session.get(f"http://127.0.0.1:{http}/metrics") as resp:
            text = await resp.text()
        for name in SERIES:
            assert f"# TYPE {name} gauge" in text, name
        assert re.search(r"^clgwd_link_connected 0\.0$", text, re.M)
        assert re.search(r"^clgwd_inventory_last_submitted_timestamp_seconds 1\.\d+e\+09$",
                         text, re.M)
        assert re.search(r"^clgwd_snmp_auth_failures_total 1\.0$", text, re.M)
    finally:
        await daemon.kill()


async def test_reload_turns_the_agent_on(tmp_path: Path) -> None:
    """SIGHUP with monitor.snmp added binds the agent without a restart."""
    config = write_config(tmp_path)
    daemon = await DaemonProcess.start(config)
    try:
        await daemon.wait_for_line("ready")
        port = free_udp_port()
        config.write_text(config.read_text() + snmp_yaml(port))
        code, _, err = await run_cli("reload", "--config", str(config))
        assert code == 0, err
        code, out, err = await netsnmp(tmp_path, "snmpget", "-v2c", "-c", COMMUNITY, "-On",
                                       f"127.0.0.1:{port}", "1.3.6.1.2.1.1.5.0")
        assert code == 0 and "STRING:" in out, err
    finally:
        await daemon.kill()


class _Garbage(asyncio.DatagramProtocol):
    """Answers every datagram with bytes that are not SNMP."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        assert isinstance(self.transport, asyncio.DatagramTransport)
        self.transport.sendto(b"\x30\x03\x02\x01garbage" + data[:5], addr)


async def test_host_answering_garbage_is_unreachable(tmp_path: Path) -> None:
    """A LAN host that answers garbage is reported unreachable; the daemon keeps running."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(_Garbage, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    config = write_config(tmp_path, extra=(
        "inventory:\n  poll_timeout: 0.5\n  platforms:\n"
        f"    - {{name: junk, address: '127.0.0.1:{port}', community: x}}\n"))
    daemon = await DaemonProcess.start(config)
    try:
        await daemon.wait_for_line("Inventory queued")
        code, out, err = await run_cli("inventory", "--json", "--config", str(config))
        assert code == 0, err
        (junk,) = json.loads(out)["platforms"]
        assert junk["reachable"] is False and junk["error"]
        assert daemon.proc.returncode is None
    finally:
        transport.close()
        await daemon.kill()
