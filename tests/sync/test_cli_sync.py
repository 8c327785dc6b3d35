"""`clgwd sync [--preview]` against a running daemon over its control socket."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from clgwd import cli
from clgwd.config import parse_config
from clgwd.daemon import Daemon
from clgwd.errors import EXIT_FAILURE, EXIT_UNAVAILABLE
from clgwd.pbx.csv_source import CsvSource
from clgwd.store import Store
from clgwd.sync.engine import SyncEngine
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
        assert "client usernames break the rule" in out
        code = await asyncio.to_thread(cli.main, ["sync", "--json", "--socket", str(sock)])
        body = json.loads(capsys.readouterr().out)
        assert code == 0 and body["result"] == "ok" and body["actor"] == "local:cli"
        assert body["counts"]["unchanged"] == 20
    finally:
        daemon.request_stop("test over")
        assert await task == 0


def test_cli_without_daemon_says_not_running(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["sync", "--socket", str(tmp_path / "none.sock")])
    assert code == EXIT_UNAVAILABLE
    assert "not running" in capsys.readouterr().err


async def _synced_state(tmp_path: Path, state_dir: Path) -> tuple[Path, Path]:
    """A config file and a state dir after one real sync of a copy of the sample."""
    csv = tmp_path / "directory.csv"
    csv.write_text(CSV.read_text(encoding="utf-8"), encoding="utf-8")
    conf = tmp_path / "clgwd.yaml"
    conf.write_text(f"state: {{dir: {state_dir}}}\ncontrol: {{socket: {tmp_path / 'no.sock'}}}\n"
                    f"pbx: {{type: csv, file: {{path: {csv}}}}}\n", encoding="utf-8")
    config = parse_config(conf.read_text(encoding="utf-8"))
    async with Store(config) as store:
        engine = SyncEngine(store, CsvSource(csv), config.pbx.effective_source_id,
                            config.sync, 60)
        assert (await engine.run(actor="test", trigger="now")).result == "ok"
    # One user renamed, one gone: the preview must report both against the snapshot.
    lines = csv.read_text(encoding="utf-8").splitlines()
    lines[1] = lines[1].replace("Alice Martin", "Alice Martin-Lee")
    csv.write_text("\n".join(lines[:2] + lines[3:]) + "\n", encoding="utf-8")
    return conf, state_dir / "state.db"


def _files(state_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(state_dir.iterdir())}


async def test_preview_without_daemon_reads_the_snapshot_read_only(
        tmp_path: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No daemon: the preview is computed here and the state dir is left byte-identical
    (no -wal/-shm files created, no run logged)."""
    conf, _ = await _synced_state(tmp_path, state_dir)
    before = _files(state_dir)
    code = await asyncio.to_thread(cli.main, ["sync", "--preview", "--json", "--config",
                                              str(conf)])
    captured = capsys.readouterr()
    body = json.loads(captured.out)
    assert code == 0, captured.err
    assert "read-only" in captured.err
    assert body["result"] == "preview" and body["actor"] == "local:cli"
    assert body["counts"]["updated"] == 1 and body["counts"]["absent_pending_delete"] == 1
    assert [c["changed"] for c in body["changes"]] == [["display_name"]]
    assert _files(state_dir) == before


async def test_preview_without_daemon_never_waits_for_the_writer(
        tmp_path: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A writer holding the database (a daemon mid-transaction, as far as SQLite can
    tell) does not block or break the read-only preview; a missing state dir is a clear
    error."""
    conf, db = await _synced_state(tmp_path, state_dir)
    writer = sqlite3.connect(db, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("DELETE FROM sync_snapshot")
        code = await asyncio.to_thread(cli.main, ["sync", "--preview", "--config", str(conf)])
        out = capsys.readouterr().out
        assert code == 0
        assert "Number of users: 19" in out and "updated 1" in out
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    conf.write_text(conf.read_text(encoding="utf-8").replace(str(state_dir),
                                                             str(tmp_path / "absent")))
    code = await asyncio.to_thread(cli.main, ["sync", "--preview", "--config", str(conf)])
    assert code == EXIT_FAILURE
    assert "no state database" in capsys.readouterr().err
    assert not (tmp_path / "absent").exists()


async def test_cli_lists_and_deletes_the_held_back_users_once(
        tmp_path: Path, state_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """After a safety abort: `sync missing` lists the set, a wrong --confirm deletes
    nothing, the right one deletes exactly those users, and then nothing is held."""
    csv = tmp_path / "directory.csv"
    lines = CSV.read_text(encoding="utf-8").splitlines()
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    sock = tmp_path / "control.sock"
    config = parse_config(
        f"state: {{dir: {state_dir}}}\ncontrol: {{socket: {sock}}}\n"
        f"http: {{listen: [{{host: 127.0.0.1, port: {free_port()}}}]}}\n"
        f"pbx: {{type: csv, file: {{path: {csv}}}}}\nsync: {{interval_minutes: 60}}\n")
    daemon = Daemon(config, None)
    task = asyncio.create_task(daemon.run(), name="test-daemon")
    try:
        for _ in range(1500):
            sync = daemon.component("sync") if sock.exists() and any(
                c.name == "sync" for c in daemon.components) else None
            if sync is not None and getattr(sync, "last", None) is not None:
                break
            await asyncio.sleep(0.02)
        csv.write_text("\n".join(lines[:9]) + "\n", encoding="utf-8")  # 12 users gone
        argv = ["--socket", str(sock)]
        assert await asyncio.to_thread(cli.main, ["sync", *argv]) == EXIT_FAILURE
        capsys.readouterr()
        assert await asyncio.to_thread(cli.main, ["sync", "missing", "--json", *argv]) == 0
        held = json.loads(capsys.readouterr().out)
        assert held["pending"] and held["count"] == len(held["users"]) >= 8
        code = await asyncio.to_thread(cli.main, ["sync", "delete-missing", "--confirm",
                                                  str(held["count"] - 1), *argv])
        assert code == EXIT_FAILURE
        assert f"type {held['count']}" in capsys.readouterr().err
        code = await asyncio.to_thread(cli.main, ["sync", "delete-missing", "--confirm",
                                                  str(held["count"]), "--json", *argv])
        body = json.loads(capsys.readouterr().out)
        assert code == 0 and body["result"] == "ok"
        assert body["counts"]["deleted"] == held["count"] and body["actor"] == "local:cli"
        assert await asyncio.to_thread(cli.main, ["sync", "missing", *argv]) == EXIT_FAILURE
        assert "no users are held back" in capsys.readouterr().out
    finally:
        daemon.request_stop("test over")
        assert await task == 0
