"""Fixtures of the monitoring tests: net-snmp's snmpd as a LAN platform, mosquitto as
the broker."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import require_program
from tests.monitor.peers import free_tcp_port, free_udp_port


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


@dataclass
class Broker:
    plain: int
    tls: int
    cafile: Path
    proc: asyncio.subprocess.Process
    conf: Path


def _make_tls(directory: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(directory / "key.pem"), "-out", str(directory / "cert.pem")],
        check=True, capture_output=True)
    (directory / "passwd").touch(mode=0o600)
    subprocess.run(["mosquitto_passwd", "-b", str(directory / "passwd"), "clgwd", "s3cret"],
                   check=True, capture_output=True)


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[Broker]:
    """mosquitto with an anonymous plain listener and a TLS listener needing a password."""
    require_program("mosquitto")
    require_program("mosquitto_sub")
    require_program("openssl")
    directory = tmp_path / "mqtt"
    directory.mkdir()
    await asyncio.to_thread(_make_tls, directory)
    plain, tls = free_tcp_port(), free_tcp_port()
    conf = directory / "mosquitto.conf"
    conf.write_text(
        "per_listener_settings true\npersistence false\nuser root\nlog_dest stdout\n"
        f"listener {plain} 127.0.0.1\nallow_anonymous true\n"
        f"listener {tls} 127.0.0.1\ncertfile {directory / 'cert.pem'}\n"
        f"keyfile {directory / 'key.pem'}\nallow_anonymous false\n"
        f"password_file {directory / 'passwd'}\n", encoding="utf-8")
    proc = await asyncio.create_subprocess_exec(
        "mosquitto", "-c", str(conf), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL)
    try:
        await asyncio.sleep(0.3)
        assert proc.returncode is None
        yield Broker(plain, tls, directory / "cert.pem", proc, conf)
    finally:
        if proc.returncode is None:
            proc.terminate()
        await proc.wait()
