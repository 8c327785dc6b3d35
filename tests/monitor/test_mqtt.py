"""MQTT publishing against a real mosquitto (plain, TLS + password file), read back
with mosquitto_sub: the retained status, events, and the last will after kill -9."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_program
from tests.daemon.proc import DaemonProcess, run_cli, write_config
from tests.monitor.peers import free_tcp_port

pytestmark = pytest.mark.peers
PREFIX = "clgwd/test-gw"


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


async def _sub(port: int, topic: str, count: int = 1, *extra: str) -> list[str]:
    """The first ``count`` messages mosquitto_sub reads on ``topic`` (retained first)."""
    proc = await asyncio.create_subprocess_exec(
        "mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-C", str(count),
        "-W", "10", *extra, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode().splitlines()


async def _wait_status(port: int, state: str, *extra: str, link: str | None = None
                       ) -> dict[str, Any]:
    async with asyncio.timeout(15):
        while True:
            status = json.loads((await _sub(port, f"{PREFIX}/status", 1, *extra))[0])
            if status["state"] == state and (link is None or status["link"]["state"] == link):
                return dict(status)
            await asyncio.sleep(0.2)


async def test_retained_status_then_last_will_after_kill(tmp_path: Path, broker: Broker
                                                         ) -> None:
    """The retained status says online with the gateway view; after kill -9 of the
    daemon the broker publishes the last will: offline."""
    config = write_config(tmp_path, extra=(
        f"monitor:\n  mqtt:\n    url: mqtt://127.0.0.1:{broker.plain}\n"
        f"    topic_prefix: {PREFIX}\n    keepalive: 5\n"))
    daemon = await DaemonProcess.start(config)
    try:
        await daemon.wait_for_line("ready")
        status = await _wait_status(broker.plain, "online", link="not_configured")
        assert "outbox" in status and "components" in status
    finally:
        await daemon.kill()  # SIGKILL: no orderly offline message
    status = await _wait_status(broker.plain, "offline")
    assert status["reason"] == "connection lost"


async def test_orderly_stop_says_offline(tmp_path: Path, broker: Broker) -> None:
    """SIGTERM publishes offline (reason stopped) before disconnecting."""
    config = write_config(tmp_path, extra=(
        f"monitor:\n  mqtt:\n    url: mqtt://127.0.0.1:{broker.plain}\n"
        f"    topic_prefix: {PREFIX}\n"))
    daemon = await DaemonProcess.start(config)
    await daemon.wait_for_line("ready")
    await _wait_status(broker.plain, "online")
    daemon.send(signal.SIGTERM)
    assert await daemon.wait() == 0
    assert (await _wait_status(broker.plain, "offline"))["reason"] == "stopped"


async def test_tls_with_password_publishes_events(tmp_path: Path, broker: Broker) -> None:
    """Over mqtts with user/password the status is published, and a config reload (a
    history event) appears on the events topic."""
    tls_args = ("--cafile", str(broker.cafile), "-u", "clgwd", "-P", "s3cret")
    config = write_config(tmp_path, extra=(
        f"monitor:\n  mqtt:\n    url: mqtts://127.0.0.1:{broker.tls}\n"
        f"    username: clgwd\n    password: s3cret\n    ca_file: {broker.cafile}\n"
        f"    topic_prefix: {PREFIX}\n"))
    daemon = await DaemonProcess.start(config)
    try:
        await daemon.wait_for_line("ready")
        await _wait_status(broker.tls, "online", *tls_args)
        events = asyncio.ensure_future(_sub(broker.tls, f"{PREFIX}/events", 1, *tls_args))
        await asyncio.sleep(0.5)
        code, _, err = await run_cli("reload", "--config", str(config))
        assert code == 0, err
        event = json.loads((await asyncio.wait_for(events, 15))[0])
        assert event["type"] == "event" and event["asset"] == "Gateway configuration"
        assert "s3cret" not in daemon.text
    finally:
        await daemon.kill()


async def test_wrong_password_is_a_clear_degraded_status(tmp_path: Path, broker: Broker
                                                         ) -> None:
    """A refused password leaves the daemon running, monitor degraded, saying why."""
    config = write_config(tmp_path, extra=(
        f"monitor:\n  mqtt:\n    url: mqtts://127.0.0.1:{broker.tls}\n"
        f"    username: clgwd\n    password: wrong-one\n    ca_file: {broker.cafile}\n"))
    daemon = await DaemonProcess.start(config)
    try:
        await daemon.wait_for_line("refused the user name or password")
        _, out, _ = await run_cli("status", "--config", str(config))
        assert "monitor" in out and "degraded" in out
        assert "refused the user name or password" in out
    finally:
        await daemon.kill()




async def test_broker_outage_then_reconnect(tmp_path: Path, broker: Broker) -> None:
    """The broker disappearing leaves the daemon running (monitor degraded, control
    socket answering); when it comes back the status is published again."""
    config = write_config(tmp_path, extra=(
        f"monitor:\n  mqtt:\n    url: mqtt://127.0.0.1:{broker.plain}\n"
        f"    topic_prefix: {PREFIX}\n"))
    daemon = await DaemonProcess.start(config)
    try:
        await daemon.wait_for_line("ready")
        await _wait_status(broker.plain, "online")
        broker.proc.kill()
        await broker.proc.wait()
        await daemon.wait_for_line("MQTT: broker 127.0.0.1")
        code, out, _ = await run_cli("status", "--config", str(config))
        assert code == 0
        assert "monitor" in out and "degraded" in out
        again = await asyncio.create_subprocess_exec(
            "mosquitto", "-c", str(broker.conf), stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        try:
            await asyncio.sleep(0.3)
            await _wait_status(broker.plain, "online")
            assert await _monitor_state(config) == "running"
        finally:
            again.terminate()
            await again.wait()
    finally:
        await daemon.kill()


async def _monitor_state(config: Path) -> str:
    async with asyncio.timeout(20):
        while True:
            _, out, _ = await run_cli("status", "--json", "--config", str(config))
            state = str(json.loads(out)["components"]["monitor"]["state"])
            if state == "running":
                return state
            await asyncio.sleep(0.5)
