"""The real ``clgwd`` process: CLI exit codes, signals, readiness, bad environments."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.daemon.notify import NotifyListener
from tests.daemon.proc import DaemonProcess, run_cli, write_config

pytestmark = pytest.mark.slow


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A temp dir any user can traverse (pytest's tmp_path is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="clgwd-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _as_nobody() -> tuple[str, ...]:
    setpriv = shutil.which("setpriv")
    if os.geteuid() != 0 or setpriv is None:
        pytest.skip("needs root and setpriv to drop privileges")
    return (setpriv, "--reuid=65534", "--regid=65534", "--clear-groups")


async def test_check_config_ok_and_errors(tmp_path: Path) -> None:
    good = write_config(tmp_path)
    code, out, _ = await run_cli("check-config", str(good))
    assert (code, out.strip()) == (0, f"{good}: OK")
    bad = tmp_path / "bad.yaml"
    bad.write_text("http: {listen: [{port: 70000}]}\nnope: 1\n")
    code, _, err = await run_cli("check-config", str(bad))
    assert code == 78
    assert "http.listen[0].port: must be 0-65535 (0 picks a free port), got 70000" in err
    assert "nope: unknown key, got 1" in err


async def test_unreadable_config_is_reported(shared_tmp: Path) -> None:
    config = write_config(shared_tmp)
    config.chmod(0o600)
    code, _, err = await run_cli("check-config", str(config), prefix=_as_nobody())
    assert code == 78
    assert "permission denied" in err


async def test_help_for_every_command() -> None:
    for command in ("run", "check-config", "status", "reload", "version", "demo",
                    "factory-reset"):
        code, out, _ = await run_cli(command, "--help")
        assert code == 0 and "usage: clgwd" in out and len(out) > 80


async def test_run_ready_status_reload_and_sigterm(tmp_path: Path) -> None:
    """The full process life: READY after bind, status, SIGHUP reload, orderly stop."""
    listener = NotifyListener(tmp_path / "notify")
    config = write_config(tmp_path)
    daemon = await DaemonProcess.start(config, env={"NOTIFY_SOCKET": str(listener.path)})
    try:
        ready = await listener.wait_for("READY", timeout=20)
        assert ready["MAINPID"] == str(daemon.proc.pid)
        line = await daemon.wait_for_line("HTTP listening on http://127.0.0.1:")
        port = int(line.rsplit(":", 1)[1])
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/api/v1/health") as resp:
                assert resp.status == 200

        code, out, _ = await run_cli("status", "--config", str(config))
        assert code == 0
        # The name column is as wide as the longest component name (inventory).
        assert re.search(r"\bstore +running", out) and re.search(r"\bhttp +running", out)

        config.write_text(config.read_text() + "unknown_key: 1\n")
        daemon.send(signal.SIGHUP)
        await daemon.wait_for_line("Config reload rejected")
        code, _, err = await run_cli("reload", "--config", str(config))
        assert code == 78 and "unknown_key: unknown key" in err

        config.write_text(config.read_text().replace("unknown_key: 1\n", "") +
                          "logging: {level: debug}\n")
        code, out, _ = await run_cli("reload", "--config", str(config))
        assert (code, out.strip()) == (0, "config reloaded")

        daemon.send(signal.SIGTERM)
        assert await daemon.wait(timeout=10) == 0
        assert (await listener.wait_for("STOPPING", timeout=5))["STOPPING"] == "1"
    finally:
        await daemon.kill()
        listener.close()
    starts = _components_reaching(daemon.lines, "Starting component ")
    stops = _components_reaching(daemon.lines, "Stopped component ")
    assert {"store", "control", "http"} <= set(starts)
    assert stops == list(reversed(starts))


def _components_reaching(lines: list[str], transition: str) -> list[str]:
    """Component names in the order their log lines show ``transition``."""
    return [line.split(transition, 1)[1].strip() for line in lines if transition in line]


async def test_status_when_not_running(tmp_path: Path) -> None:
    code, _, err = await run_cli("status", "--socket", str(tmp_path / "none.sock"))
    assert code == 69
    assert "not running" in err


async def test_sigterm_at_any_point_of_startup_is_clean(tmp_path: Path) -> None:
    """SIGTERM early, mid-start or after READY: exit cleanly and leave a usable state."""
    config = write_config(tmp_path)
    for delay in (0.0, 0.3, 0.6, 0.9, 1.2):
        daemon = await DaemonProcess.start(config)
        await asyncio.sleep(delay)
        daemon.send(signal.SIGTERM)
        code = await daemon.wait(timeout=12)
        assert code in (0, -signal.SIGTERM), daemon.text
        assert "Traceback" not in daemon.text
    daemon = await DaemonProcess.start(config)
    await daemon.wait_for_line("ready:")
    daemon.send(signal.SIGINT)
    assert await daemon.wait(timeout=12) == 0


async def test_port_in_use_exits_with_clear_error(tmp_path: Path) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    try:
        daemon = await DaemonProcess.start(write_config(tmp_path, port=port))
        assert await daemon.wait() == 1
        assert f"cannot listen on 127.0.0.1:{port}: port {port} is already in use" in daemon.text
        assert "Traceback" not in daemon.text
    finally:
        blocker.close()


async def test_invalid_config_exits_78(tmp_path: Path) -> None:
    config = write_config(tmp_path, extra="daemon: {stop_timeout: -1}\n")
    daemon = await DaemonProcess.start(config)
    assert await daemon.wait() == 78
    assert "daemon.stop_timeout: must be > 0, got -1" in daemon.text


async def test_corrupted_state_refuses_to_start_and_keeps_file(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    (tmp_path / "state").mkdir()
    db = tmp_path / "state" / "state.db"
    db.write_bytes(b"garbage" * 1000)
    daemon = await DaemonProcess.start(config)
    assert await daemon.wait() == 1
    assert "is corrupted" in daemon.text and "refusing to start" in daemon.text
    assert db.read_bytes() == b"garbage" * 1000


async def test_state_dir_not_writable_for_service_user(shared_tmp: Path) -> None:
    prefix = _as_nobody()
    config = write_config(shared_tmp)
    (shared_tmp / "state").mkdir(mode=0o700)
    config.chmod(0o644)
    daemon = await DaemonProcess.start(config, prefix=prefix)
    assert await daemon.wait() == 1
    assert "is not writable by this user" in daemon.text


async def test_journal_format_has_priority_and_no_timestamp(tmp_path: Path) -> None:
    daemon = await DaemonProcess.start(write_config(tmp_path), env={"JOURNAL_STREAM": "8:1"})
    try:
        await daemon.wait_for_line("ready:")
    finally:
        daemon.send(signal.SIGTERM)
        await daemon.wait()
    assert daemon.lines and all(line.startswith("<") for line in daemon.lines
                                if not line.startswith("  "))
    assert any(line.startswith("<6>clgwd.daemon: clgwd ") for line in daemon.lines)
    assert not any(line[1:2].isdigit() and "T" in line[3:25] and "Z" in line[3:25]
                   for line in daemon.lines[:3] if line.startswith("<") is False)
