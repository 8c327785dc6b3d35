"""Alert notifications: snmptrapd receives a v2c trap when an alert is raised."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.conftest import require_program
from tests.daemon.proc import DaemonProcess, run_cli, write_config
from tests.monitor.peers import V3_AUTH, V3_PRIV, V3_USER, free_udp_port, snmp_yaml

pytestmark = pytest.mark.peers
ALERT_RAISED = "1.3.6.1.4.1.99999.1.2.0.1"


async def test_trap_on_alert_raised(tmp_path: Path) -> None:
    """A failing sync raises an alert; snmptrapd logs clgwdAlertRaised with its code."""
    require_program("snmptrapd")
    trap_port = free_udp_port()
    (tmp_path / "snmptrapd.conf").write_text("authCommunity log trap-secret\n")
    log = tmp_path / "traps.log"
    with log.open("wb") as out:
        trapd = await asyncio.create_subprocess_exec(
            "snmptrapd", "-f", "-Lo", "-On", "-C", "-c", str(tmp_path / "snmptrapd.conf"),
            "-p", str(tmp_path / "trapd.pid"), f"udp:127.0.0.1:{trap_port}",
            stdout=out, stderr=out,
            env={**os.environ, "MIBS": "", "SNMP_PERSISTENT_DIR": str(tmp_path / "p")})
    agent_port = free_udp_port()
    config = write_config(tmp_path, extra=(
        "pbx: {type: csv, name: Lab PBX, file: {path: /nonexistent/users.csv}}\n"
        + snmp_yaml(agent_port, f"    traps:\n      - {{address: '127.0.0.1:{trap_port}', "
                                "community: trap-secret}\n")))
    daemon = await DaemonProcess.start(config)
    try:
        await daemon.wait_for_line("ready")
        await run_cli("sync", "--config", str(config))  # fails: the file does not exist
        async with asyncio.timeout(15):
            while ALERT_RAISED not in log.read_text(errors="replace"):
                await asyncio.sleep(0.2)
        text = log.read_text(errors="replace")
        assert ".1.3.6.1.4.1.99999.1.1.4.1.0 = STRING:" in text  # clgwdNotifyAlertCode
        assert "trap-secret" not in daemon.text
    finally:
        await daemon.kill()
        trapd.terminate()
        await trapd.wait()


async def test_v3_inform_on_alert_raised(tmp_path: Path) -> None:
    """With a v3 user as trap target, snmptrapd receives an authPriv inform."""
    require_program("snmptrapd")
    trap_port = free_udp_port()
    (tmp_path / "snmptrapd.conf").write_text(
        f'createUser {V3_USER} SHA-256 "{V3_AUTH}" AES "{V3_PRIV}"\n'
        f"authUser log {V3_USER} priv\n")
    log = tmp_path / "traps.log"
    with log.open("wb") as out:
        trapd = await asyncio.create_subprocess_exec(
            "snmptrapd", "-f", "-Lo", "-On", "-C", "-c", str(tmp_path / "snmptrapd.conf"),
            "-p", str(tmp_path / "trapd.pid"), f"udp:127.0.0.1:{trap_port}",
            stdout=out, stderr=out,
            env={**os.environ, "MIBS": "", "SNMP_PERSISTENT_DIR": str(tmp_path / "p")})
    config = write_config(tmp_path, extra=(
        "pbx: {type: csv, name: Lab PBX, file: {path: /nonexistent/users.csv}}\n"
        + snmp_yaml(free_udp_port(), f"    traps:\n      - {{address: '127.0.0.1:{trap_port}'"
                                     f", user: {V3_USER}}}\n")))
    daemon = await DaemonProcess.start(config)
    try:
        await daemon.wait_for_line("ready")
        await run_cli("sync", "--config", str(config))
        async with asyncio.timeout(15):
            while ALERT_RAISED not in log.read_text(errors="replace"):
                await asyncio.sleep(0.2)
        assert "SNMP notification" not in daemon.text  # no failure was logged
    finally:
        await daemon.kill()
        trapd.terminate()
        await trapd.wait()
