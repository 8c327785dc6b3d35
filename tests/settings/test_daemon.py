"""Through a real daemon: ``clgwd config get`` shows value and source, and the offline
preview resolves the same PBX settings as the running daemon."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from clgwd import cli
from clgwd.cli.common import control_request
from clgwd.cli.sync_offline import _effective_pbx
from clgwd.config import load_config
from clgwd.daemon import Daemon
from clgwd.store import Store
from tests.pbx.peers import free_port

CSV = Path(__file__).parents[2] / "clgwd" / "pbx" / "samples" / "directory.csv"


async def test_cli_config_get_and_offline_preview_agree_with_the_daemon(
        tmp_path: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """After the PBX is saved over the control socket (as the page would), ``clgwd config
    get`` reports the saved name as ``page`` by ``local:cli`` and the file's keys as
    ``file``/``default``; the offline preview resolves the daemon's own PBX settings."""
    sock = tmp_path / "control.sock"
    path = tmp_path / "clgwd.yaml"
    await asyncio.to_thread(path.write_text, (
        f"state: {{dir: {state_dir}}}\ncontrol: {{socket: {sock}}}\n"
        f"http: {{listen: [{{host: 127.0.0.1, port: {free_port()}}}]}}\n"
        f"pbx: {{type: csv, name: File CSV, read_timeout: 33, file: {{path: {CSV}}}}}\n"))
    config = await asyncio.to_thread(load_config, path)
    daemon = Daemon(config, path)
    task = asyncio.create_task(daemon.run(), name="test-daemon")
    try:
        async with asyncio.timeout(30):
            while not (sock.exists() and any(c.name == "system" for c in daemon.components)):
                await asyncio.sleep(0.02)
        status, _ = await control_request(sock, "POST", "/v1/command/pbx.set", body={
            "type": "csv", "name": "Page CSV", "options": {"path": str(CSV)}})
        assert status == 200
        code = await asyncio.to_thread(cli.main, ["config", "get", "pbx.name", "pbx.read_timeout",
                                                  "sync.interval_minutes", "--socket", str(sock)])
        lines = capsys.readouterr().out.splitlines()
        assert code == 0
        assert lines[0].split() == ["KEY", "VALUE", "SOURCE", "SET", "BY"]
        rows = {line.split()[0]: line for line in lines[1:]}
        assert rows["pbx.name"].split('"')[1] == "Page CSV"
        assert rows["pbx.name"].split('"')[2].split()[:3] == ["page", "local:cli", "at"]
        assert rows["pbx.read_timeout"].split()[1:] == ["33.0", "file"]
        assert rows["sync.interval_minutes"].split()[1:] == ["20", "default"]
        code = await asyncio.to_thread(cli.main, ["config", "get", "pbx", "--json",
                                                  "--socket", str(sock)])
        answer = json.loads(capsys.readouterr().out)
        by_key = {e["key"]: e for e in answer["settings"]}
        assert code == 0 and answer["notes"] == [
            "pbx.name: the config file's value does not apply: the value saved from the page "
            "by local:cli wins; change it with pbx.set, from the onboarding page's PBX step "
            "or the CLI at the gateway"]
        assert (by_key["pbx.name"]["source"], by_key["pbx.host"]["source"]) == ("page", "page")
        assert by_key["pbx.source_id"]["source"] == "default"
        code = await asyncio.to_thread(cli.main, ["config", "get", "pbx.nmae",
                                                  "--socket", str(sock)])
        assert code == 1 and "pbx.nmae" in capsys.readouterr().err
        code = await asyncio.to_thread(cli.main, ["config", "forget", "pbx",
                                                  "--socket", str(sock)])
        out = capsys.readouterr().out
        assert code == 0 and out.startswith("forgotten: pbx\n")
        [name_row] = [line.split('"') for line in out.splitlines()
                      if line.startswith("pbx.name ")]
        assert (name_row[1], name_row[2].split()) == ("File CSV", ["file"])
        async with Store(config, read_only=True) as reader:
            offline = await _effective_pbx(reader, config)
        assert offline == getattr(daemon.component("sync"), "_pbx")  # noqa: B009
        assert offline.name == "File CSV"
    finally:
        daemon.request_stop("test over")
        assert await task == 0
    code = await asyncio.to_thread(cli.main, ["config", "get", "--socket", str(sock)])
    assert code == 69 and "not running" in capsys.readouterr().err
