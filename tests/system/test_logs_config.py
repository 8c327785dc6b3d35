"""logs.collect and the cloud's config.get / config.set."""

from __future__ import annotations

import asyncio
import logging
import os
import stat
import typing
from pathlib import Path

import pytest
import yaml

from clgwd.config import Secret
from clgwd.system import configedit
from clgwd.system.errors import ForbiddenConfigKey, InvalidParams, SystemUnavailable
from tests.system.conftest import MakeRig, system_text

PBX_PASSWORD = "pbx-pass-7781"


async def test_logs_come_from_memory_scrubbed_and_without_console_lines(
        make_rig: MakeRig, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    async with make_rig() as rig:
        log = logging.getLogger("clgwd.test")
        log.warning("marker-one password=%s", Secret("hunter2-secret").reveal())
        log.info("Setup code for the first visit: ABCDE-FGHIJ", extra={"console_only": True})
        answer = await rig.call("logs.collect", {"since_hours": 1})
    assert answer["source"] == "memory" and answer["truncated"] is False
    text = "\n".join(answer["lines"])
    assert "marker-one password=***" in text
    assert "hunter2-secret" not in text and "ABCDE-FGHIJ" not in text


async def test_logs_are_bounded_newest_kept(make_rig: MakeRig, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    async with make_rig(system_text(tmp_path, ", logs_max_bytes: 4096")) as rig:
        for i in range(200):
            logging.getLogger("clgwd.test").warning("filler line %03d %s", i, "x" * 40)
        answer = await rig.call("logs.collect", {"since_hours": 168})
    assert answer["truncated"] is True
    assert sum(len(line.encode()) + 1 for line in answer["lines"]) <= 4096
    assert "filler line 199" in answer["lines"][-1]


@pytest.mark.parametrize("params", [{"since_hours": 0}, {"since_hours": 169},
                                    {"since_hours": "24"}, {"since_hours": True},
                                    {"hours": 1}])
async def test_logs_since_hours_is_checked(make_rig: MakeRig, params: dict[str, object]) -> None:
    async with make_rig() as rig:
        with pytest.raises(InvalidParams, match="since_hours|unknown"):
            await rig.call("logs.collect", params)


async def test_logs_come_from_the_journal_under_systemd(make_rig: MakeRig, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """With JOURNAL_STREAM set, journalctl is asked (here a fake on PATH that records its
    arguments); the setup code line and known secrets do not come through."""
    bindir = tmp_path / "bin"
    await asyncio.to_thread(_fake_journalctl, bindir, tmp_path / "args")
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("JOURNAL_STREAM", "8:1234")
    secret = Secret("journal-secret-99")
    async with make_rig() as rig:
        answer = await rig.call("logs.collect", {"since_hours": 5})
    assert answer["source"] == "journal"
    assert answer["lines"] == ["clgwd.daemon: ready", "clgwd.x: token ***"]
    assert secret.reveal() == "journal-secret-99"
    args = (tmp_path / "args").read_text().split()
    assert args[:4] == ["-u", "clgwd", "--since", "-5h"] and "cat" in args


def _fake_journalctl(bindir: Path, args_file: Path) -> None:
    bindir.mkdir()
    script = bindir / "journalctl"
    script.write_text(f"#!/bin/sh\necho \"$@\" > {args_file}\n"
                      "echo 'clgwd.daemon: ready'\n"
                      "echo 'clgwd.web.app: Setup code for the first visit: QQQQQ-WWWWW'\n"
                      "echo 'clgwd.x: token journal-secret-99'\n")
    script.chmod(0o755)


def _pbx_text(tmp: Path) -> str:
    return system_text(tmp) + (f"pbx: {{type: csv, password: {PBX_PASSWORD}, "
                               f"file: {{path: {tmp / 'dir.csv'}}}}}\n"
                               "sync: {interval_minutes: 20}\n")


async def test_config_get_shows_secrets_as_set(make_rig: MakeRig, tmp_path: Path) -> None:
    async with make_rig(_pbx_text(tmp_path)) as rig:
        answer = await rig.call("config.get")
    config = answer["config"]
    assert config["pbx"]["password"] == "set"
    assert config["sync"]["interval_minutes"] == 20
    assert config["cloud"]["url"] is None
    assert PBX_PASSWORD not in str(answer)
    assert "system" in answer["remote_forbidden"]


async def test_config_set_merges_writes_atomically_and_reloads(make_rig: MakeRig,
                                                               tmp_path: Path) -> None:
    async with make_rig(_pbx_text(tmp_path), mode=0o640) as rig:
        answer = await rig.call("config.set", {"patch": {"sync": {"interval_minutes": 45},
                                                         "logging": {"level": "debug"}}})
        assert answer == {"applied": True,
                          "changed": ["logging.level", "sync.interval_minutes"]}
        assert rig.reloads == 1 and rig.config.sync.interval_minutes == 45
        assert await rig.call("config.set", {"patch": {"sync": {"interval_minutes": 45}}}) \
            == {"applied": True, "changed": []}
        assert rig.reloads == 1
        [event] = [e for e in await rig.store.history.query(configedit_filter())]
        assert event.properties_changed == ["logging.level", "sync.interval_minutes"]
    path = rig.config_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    data = yaml.safe_load(path.read_text())
    assert data["sync"]["interval_minutes"] == 45 and data["pbx"]["password"] == PBX_PASSWORD
    backup = yaml.safe_load(configedit.backup_path(path).read_text())
    assert backup["sync"]["interval_minutes"] == 20


def configedit_filter():  # type: ignore[no-untyped-def]
    from clgwd.store import EventFilter
    return EventFilter(asset="Gateway configuration")


@pytest.mark.parametrize(("patch", "error", "message"), [
    ({"system": {"update_command": ["rm", "-rf", "/"]}}, ForbiddenConfigKey, "^system:"),
    ({"state": {"dir": "/tmp/elsewhere"}}, ForbiddenConfigKey, "^state.dir:"),
    ({"http": {"listen": [{"host": "0.0.0.0", "port": 8080}]}}, ForbiddenConfigKey,
     "^http.listen:"),
    ({"pbx": {"file": {"path": "/etc/shadow"}}}, ForbiddenConfigKey, "^pbx.file.path:"),
    ({"sync": {"interval_minutes": "often"}}, InvalidParams, "sync.interval_minutes: must be"),
    ({"sync": {"bogus": 1}}, InvalidParams, "sync.bogus: unknown key"),
    ({"pbx": {"password": "set"}}, InvalidParams, "pbx.password: 'set' is config.get's"),
])
async def test_config_set_refuses_bad_patches(make_rig: MakeRig, tmp_path: Path,
                                              patch: dict[str, object], error: type[Exception],
                                              message: str) -> None:
    async with make_rig(_pbx_text(tmp_path)) as rig:
        before = await asyncio.to_thread(rig.config_path.read_text)
        with pytest.raises(error, match=message):
            await rig.call("config.set", {"patch": patch})
        assert await asyncio.to_thread(rig.config_path.read_text) == before
        assert rig.reloads == 0


async def test_config_set_restores_the_file_when_the_reload_fails(
        make_rig: MakeRig, tmp_path: Path) -> None:
    async with make_rig(_pbx_text(tmp_path)) as rig:
        before = await asyncio.to_thread(rig.config_path.read_text)

        async def failing_reload() -> dict[str, object]:
            rig.reloads += 1
            return {"applied": False, "errors": ["network: port eth9 is missing"]}

        object.__setattr__(rig.system.hooks, "reload", failing_reload)
        with pytest.raises(SystemUnavailable, match="eth9 is missing.*previous file"):
            await rig.call("config.set", {"patch": {"sync": {"interval_minutes": 30}}})
        assert await asyncio.to_thread(rig.config_path.read_text) == before
        assert rig.reloads == 1


def test_every_path_setting_is_out_of_the_clouds_reach() -> None:
    """A config key holding a file path (the daemon reads or writes it) must be listed
    in REMOTE_FORBIDDEN (or sit under a listed section)."""
    from pydantic import BaseModel

    from clgwd.config import ClgwdConfig

    def leaves(annotation: object) -> list[object]:
        args = typing.get_args(annotation)
        if typing.get_origin(annotation) is typing.Annotated:
            return leaves(args[0])
        return [x for a in args for x in leaves(a)] if args else [annotation]

    def paths(model: type[BaseModel], prefix: str = "") -> list[str]:
        out: list[str] = []
        for name, field in model.model_fields.items():
            key = f"{prefix}{name}"
            types = leaves(field.annotation)
            if any(isinstance(t, type) and issubclass(t, Path) for t in types):
                out.append(key)
            for t in types:
                if isinstance(t, type) and issubclass(t, BaseModel):
                    out.extend(paths(t, key + "."))
        return out

    found = paths(ClgwdConfig)
    assert "pbx.file.path" in found
    unprotected = [p for p in found if not any(
        p == f or p.startswith(f + ".") for f in configedit.REMOTE_FORBIDDEN)]
    assert unprotected == []
