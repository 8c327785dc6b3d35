"""MQTT publishing against a real mosquitto (plain, TLS + password file), read back
with mosquitto_sub: the retained status, events, and the last will after kill -9."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.daemon.proc import DaemonProcess, run_cli, write_config
from tests.monitor.conftest import Broker
from tests.monitor.peers import mqtt_sub as _sub

pytestmark = pytest.mark.peers
PREFIX = "clgwd/test-gw"


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
