"""Fixtures of the monitoring tests: net-snmp's snmpd as a LAN platform."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import require_program
from tests.monitor.peers import free_udp_port


@pytest.fixture
async def snmpd(tmp_path: Path) -> AsyncIterator[int]:
    """net-snmp's snmpd on 127.0.0.1:<free port> with a v2c community and a v3 user."""
    require_program("snmpd")
    port = free_udp_port()
    conf = tmp_path / "snmpd.conf"
    conf.write_text(
        f"agentAddress udp:127.0.0.1:{port}\nrocommunity lan-ro 127.0.0.1\n"
        'createUser lanv3 SHA-256 "authpass123" AES "privpass123"\nrouser lanv3 priv\n'
        "sysName lan-platform-1\nsysLocation lab\n", encoding="utf-8")
    (tmp_path / "persist").mkdir()
    proc = await asyncio.create_subprocess_exec(
        "snmpd", "-f", "-Lo", "-C", "-c", str(conf), "-p", str(tmp_path / "snmpd.pid"),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        env={**os.environ, "SNMP_PERSISTENT_DIR": str(tmp_path / "persist"), "MIBS": ""})
    try:
        await asyncio.sleep(0.5)
        assert proc.returncode is None
        yield port
    finally:
        proc.terminate()
        await proc.wait()
