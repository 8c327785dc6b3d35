"""`clgwd sync [--preview]` against a running daemon over its control socket."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from clgwd import cli
from clgwd.config import parse_config
from clgwd.daemon import Daemon
from tests.pbx.peers import free_port

CSV = Path(__file__).parents[2] / "clgwd" / "pbx" / "samples" / "directory.csv"


async def test_cli_preview_then_sync_through_the_daemon(
        tmp_path: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Preview shows would-be changes and changes nothing; sync applies and reports."""
    sock = tmp_path / "control.sock"
    config = parse_config(
        f"state: {{dir: {state_dir}}}\ncontrol: {{socket: {sock}}}\n"
        f"http: {{listen: [{{host: 127.0.0.1, port: {free_port()}}}]}}\n"
        f"pbx: {{type: csv, file: {{path: {CSV}}}}}\nsync: {{interval_minutes: 60}}\n")
    daemon = Daemon(config, None)
    task = asyncio.create_task(daemon.run(), name="test-daemon")
    try:
        for _ in range(1500):
            # The control socket opens before the sync component is built (daemon order).
            if sock.exists() and any(c.name == "sync" for c in daemon.components):
                break
            await asyncio.sleep(0.02)
        # the scheduled first sync may be running: wait until it is done
        sync = daemon.component("sync")
        for _ in range(1500):
            if getattr(sync, "last", None) is not None:
                break
            await asyncio.sleep(0.02)
        assert getattr(sync, "last", None) is not None, "the scheduled first sync never ran"
        code = await asyncio.to_thread(cli.main, ["sync", "--preview", "--socket", str(sock)])
        out = capsys.readouterr().out
        assert code == 0
        assert "Number of users: 20" in out
        assert "invalid client usernames:" in out
        code = await asyncio.to_thread(cli.main, ["sync", "--json", "--socket", str(sock)])
        body = json.loads(capsys.readouterr().out)
        assert code == 0 and body["result"] == "ok" and body["actor"] == "local:cli"
        assert body["counts"]["unchanged"] == 15
    finally:
        daemon.request_stop("test over")
        assert await task == 0


def test_cli_without_daemon_says_not_running(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["sync", "--socket", str(tmp_path / "none.sock")])
    assert code == cli.EXIT_UNAVAILABLE
    assert "not running" in capsys.readouterr().err
