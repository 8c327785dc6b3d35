"""Helpers for the monitoring tests: a clgwd daemon with monitoring on, net-snmp tools."""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

from tests.conftest import require_program

ROOT = Path(__file__).resolve().parents[2]
COMMUNITY = "clgwd-test-ro"
V3_USER = "clgwdv3"
V3_AUTH = "authpass-123"
V3_PRIV = "privpass-123"
V3_ARGS = ("-v3", "-l", "authPriv", "-u", V3_USER, "-a", "SHA-256", "-A", V3_AUTH,
           "-x", "AES", "-X", V3_PRIV)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def snmp_yaml(port: int, extra: str = "") -> str:
    return (f"monitor:\n  snmp:\n    listen: ['127.0.0.1:{port}']\n"
            f"    community: {COMMUNITY}\n"
            f"    users:\n      - {{name: {V3_USER}, auth_key: {V3_AUTH}, "
            f"priv_key: {V3_PRIV}}}\n" + extra)


def netsnmp_env(tmp_path: Path, mibs: bool = False) -> dict[str, str]:
    """No system MIBs (quiet output, numeric OIDs); a scratch persistent dir."""
    env = {**os.environ, "SNMP_PERSISTENT_DIR": str(tmp_path / "netsnmp"), "MIBS": ""}
    if mibs:
        env["MIBDIRS"] = f"{ROOT / 'mibs'}:{ROOT / 'tests' / 'monitor' / 'mibs'}"
        env["MIBS"] = "CLGWD-MIB"
    return env


async def netsnmp(tmp_path: Path, tool: str, *args: str, mibs: bool = False
                  ) -> tuple[int, str, str]:
    """Run a net-snmp command line tool; (exit code, stdout, stderr)."""
    require_program(tool)
    proc = await asyncio.create_subprocess_exec(
        tool, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=netsnmp_env(tmp_path, mibs))
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def mqtt_sub(port: int, topic: str, count: int = 1, *extra: str) -> list[str]:
    """The first ``count`` messages mosquitto_sub reads on ``topic`` (retained first)."""
    proc = await asyncio.create_subprocess_exec(
        "mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-C", str(count),
        "-W", "10", *extra, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode().splitlines()
