"""``poll_platform`` and ``Notifier`` in the test's own event loop (blockbuster on)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from clgwd.config.monitor import SnmpUser
from clgwd.config.secret import Secret
from clgwd.monitor import snmp
from tests.conftest import require_program
from tests.monitor.peers import free_udp_port

pytestmark = pytest.mark.peers


async def test_poll_v2c_and_v3_without_blocking_the_loop(snmpd: int) -> None:
    """snmpd answers the system group and hrStorage over v2c and v3 authPriv."""
    address = f"127.0.0.1:{snmpd}"
    v2 = await snmp.poll_platform(address, community=Secret("lan-ro"), user=None, wait=2)
    user = SnmpUser(name="lanv3", auth_key=Secret("authpass123"),
                    priv_key=Secret("privpass123"))
    v3 = await snmp.poll_platform(address, community=None, user=user, wait=2)
    for report in (v2, v3):
        assert report.reachable, report.error
        assert report.sys_name == "lan-platform-1" and not report.mitel
        assert report.uptime_seconds is not None and report.storage


async def test_poll_wrong_community_is_unreachable_in_time(snmpd: int) -> None:
    """A wrong community is no answer: unreachable, within the timeout and one retry."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    report = await snmp.poll_platform(f"127.0.0.1:{snmpd}", community=Secret("nope"),
                                      user=None, wait=0.3)
    assert not report.reachable and "timeout" in report.error.lower()
    assert loop.time() - start < 3


async def test_notifier_sends_a_trap(tmp_path: Path) -> None:
    """A v2c trap from ``Notifier`` reaches snmptrapd."""
    require_program("snmptrapd")
    port = free_udp_port()
    (tmp_path / "t.conf").write_text("authCommunity log unit-trap\n")
    log = tmp_path / "t.log"
    with log.open("wb") as out:
        trapd = await asyncio.create_subprocess_exec(
            "snmptrapd", "-f", "-Lo", "-On", "-C", "-c", str(tmp_path / "t.conf"),
            f"udp:127.0.0.1:{port}", stdout=out, stderr=out,
            env={**os.environ, "MIBS": "", "SNMP_PERSISTENT_DIR": str(tmp_path / "p")})
    notifier = snmp.Notifier()
    try:
        await asyncio.sleep(0.3)
        error = await notifier.send(
            snmp.NotificationTarget(f"127.0.0.1:{port}", community=Secret("unit-trap")),
            (1, 3, 6, 1, 4, 1, 99999, 1, 2, 0, 1),
            [((1, 3, 6, 1, 4, 1, 99999, 1, 1, 4, 1, 0), snmp.text("unit-code"))], 5.0)
        assert error is None
        async with asyncio.timeout(5):
            while "unit-code" not in log.read_text(errors="replace"):
                await asyncio.sleep(0.1)
    finally:
        notifier.close()
        trapd.terminate()
        await trapd.wait()
