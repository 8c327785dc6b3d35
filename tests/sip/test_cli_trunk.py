"""``clgwd trunk ...`` against a running daemon (``clgwd run`` and ``clgwd demo``),
with sipp as the trunk."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from pathlib import Path
from socket import SOCK_STREAM
from typing import Any

import pytest

from tests.daemon.proc import DaemonProcess, run_cli, write_config
from tests.sip.peers import free_port, sipp_uas

pytestmark = [pytest.mark.peers, pytest.mark.slow, pytest.mark.timeout(120)]


async def listed(socket_args: list[str]) -> list[dict[str, Any]]:
    code, out, err = await run_cli("trunk", "list", "--json", *socket_args)
    assert code == 0, err
    trunks: list[dict[str, Any]] = json.loads(out)
    return trunks


async def wait_listed(socket_args: list[str], state: str) -> dict[str, Any]:
    async with asyncio.timeout(30):
        while True:
            trunks = await listed(socket_args)
            if trunks and trunks[0]["state"] == state:
                return trunks[0]
            await asyncio.sleep(0.3)


async def exercise(tmp_path: Path, socket_args: list[str]) -> None:
    """add / list --json / check / status / remove, and the peer going away."""
    async with sipp_uas(tmp_path, "options_uas", "udp") as peer:
        code, out, err = await run_cli(
            "trunk", "add", "pbx1", "--host", "127.0.0.1", "--port", str(peer.port),
            "--transport", "udp", "--interval", "1", "--timeout", "1", *socket_args)
        assert code == 0, err
        up = await wait_listed(socket_args, "up")
        assert {"name", "state", "rtt_ms", "reason"} <= set(up)
        assert up["name"] == "pbx1" and up["rtt_ms"] > 0
        code, out, err = await run_cli("trunk", "check", "pbx1", *socket_args)
        assert code == 0 and re.search(r"pbx1\s+up", out), out + err
        code, out, err = await run_cli("trunk", "add", "pbx1", "--host", "127.0.0.1",
                                       *socket_args)
        assert code == 1 and "name: a trunk named 'pbx1' exists already" in err
        code, out, err = await run_cli("trunk", "add", "bad", "--host", "127.0.0.1",
                                       "--port", "0", *socket_args)
        assert code == 1 and "port: must be 1-65535" in err
    down = await wait_listed(socket_args, "down")
    assert "no answer within 1 s over UDP" in down["reason"]
    code, out, _ = await run_cli("status", "--json", *socket_args)
    status = json.loads(out)["components"]["trunks"]
    assert status["state"] == "degraded" and "pbx1" in status["message"]
    code, out, err = await run_cli("trunk", "remove", "pbx1", *socket_args)
    assert code == 0, err
    assert await listed(socket_args) == []


async def test_trunk_commands_under_clgwd_run(tmp_path: Path) -> None:
    """The acceptance interface works against ``clgwd run``."""
    config = write_config(tmp_path)
    daemon = await DaemonProcess.start(config)
    try:
        await daemon.wait_for_line("ready:")
        await exercise(tmp_path, ["--config", str(config)])
        await exercise(tmp_path, ["--socket", str(tmp_path / "control.sock")])
    finally:
        daemon.send(signal.SIGTERM)
        assert await daemon.wait() == 0, daemon.text


async def test_trunk_commands_under_clgwd_demo(tmp_path: Path) -> None:
    """The same commands work against ``clgwd demo`` (its control socket is in its
    state dir)."""
    state = tmp_path / "demo"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clgwd", "demo", "--port", str(free_port(SOCK_STREAM)),
        "--tls-port", str(free_port(SOCK_STREAM)), "--state-dir", str(state),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    assert proc.stdout is not None
    try:
        output = b""
        async with asyncio.timeout(60):
            while b"ready:" not in output:
                line = await proc.stdout.readline()
                assert line, f"demo ended early:\n{output.decode()}"
                output += line
        drain = asyncio.ensure_future(proc.stdout.read())
        await exercise(tmp_path, ["--socket", str(state / "control.sock")])
        proc.send_signal(signal.SIGINT)
        await asyncio.wait_for(proc.wait(), 20)
        await drain
        assert proc.returncode == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
