"""Signed release updates through the system component: check, download over mutual TLS
from the reference cloud, install with pip from the bundle only, switch, trial, confirm,
rollback, and the record of each (history, last check/update, alert)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from clgwd import __version__, cli
from clgwd.commands import CommandContext, CommandRouter
from clgwd.component import ComponentState, ComponentStatus
from clgwd.config import ClgwdConfig, parse_config
from clgwd.config.system import SystemConfig
from clgwd.control import ControlServer
from clgwd.refcloud.server import RefCloud
from clgwd.store import EventFilter, Store
from clgwd.system import DaemonHooks, SystemComponent, releases
from clgwd.system import rollback as layout
from clgwd.system.bundle import parse_version
from clgwd.system.errors import ActionInProgress
from tests.link.harness import enroll_gateway, gateway_config, refcloud, running_gateway
from tests.system.conftest import wait_until
from tests.system.fakerelease import fake_bundle, fake_root

pytestmark = pytest.mark.slow  # pip builds real virtual environments
NEW = "99.0.0"
CLI = CommandContext(actor="local:cli")


def _raw_b64(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    yield await asyncio.to_thread(path.read_bytes)


@dataclass
class UpdateRig:
    tmp: Path
    cloud: RefCloud
    config: ClgwdConfig
    store: Store
    router: CommandRouter
    system: SystemComponent
    root: Path
    restarts: list[str] = field(default_factory=list)

    async def publish(self, path: Path, rollback: bool = False) -> None:
        await self.cloud.releases.publish(_chunks(path), rollback)

    async def call(self, method: str) -> Any:
        return await self.router.call(method, {}, CLI)

    async def subjects(self) -> list[str]:
        return [e.subject for e in await self.store.history.query(EventFilter())][::-1]

    async def apply_and_wait(self) -> None:
        await self.call("update.apply")
        await wait_until(lambda: self.system.tracker.current.message == "idle", 120)


@contextlib.asynccontextmanager
async def update_rig(tmp: Path, key: Ed25519PrivateKey,
                     **system: Any) -> AsyncIterator[UpdateRig]:
    root = await asyncio.to_thread(fake_root, tmp, __version__)
    async with refcloud(tmp / "cloud") as cloud:
        cloud.release_key = _raw_b64(key)
        base = gateway_config(tmp, cloud.url, cloud.ca_file)
        config = base.model_copy(update={"system": SystemConfig(
            release_root=root, release_key_file=tmp / "no-pinned-key.pem", **system)})
        await enroll_gateway(config, cloud)
        async with running_gateway(config) as gw:
            await gw.online()
            rig: UpdateRig

            async def reload() -> dict[str, Any]:
                return {"applied": True, "errors": []}

            hooks = DaemonHooks(config=lambda: config, config_path=None, reload=reload,
                                restart=lambda why: rig.restarts.append(why),  # noqa: PLW0108
                                cloud=gw.link, statuses=dict)
            system_component = SystemComponent(gw.store, gw.commands, hooks)
            rig = UpdateRig(tmp, cloud, config, gw.store, gw.commands, system_component, root)
            async with system_component:
                yield rig


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


async def test_check_finds_a_newer_release_and_records_it(tmp_path: Path,
                                                          key: Ed25519PrivateKey) -> None:
    """update.check asks the cloud over the link, answers the offer, records the check."""
    async with update_rig(tmp_path, key) as rig:
        answer = await rig.call("update.check")
        assert answer["available"] is False  # nothing published yet
        bundle = await asyncio.to_thread(fake_bundle, tmp_path, NEW, key)
        await rig.publish(bundle)
        answer = await rig.call("update.check")
        assert answer["available"] is True and answer["release"]["version"] == NEW
        status = await rig.call("update.status")
        assert status["last_check"]["available"] is True
        assert status["current_version"] == __version__
        assert f"update check: {NEW} available" in await rig.subjects()


async def test_apply_downloads_installs_and_switches(tmp_path: Path,
                                                     key: Ed25519PrivateKey) -> None:
    """update.apply: download over mutual TLS, verify with the key from enrollment,
    install a venv from the bundle's wheels, write the marker, switch, restart."""
    async with update_rig(tmp_path, key) as rig:
        await rig.publish(await asyncio.to_thread(fake_bundle, tmp_path, NEW, key))
        await rig.apply_and_wait()
        assert rig.restarts == [f"update to {NEW}"]
        assert await asyncio.to_thread(layout.current_version, rig.root) == NEW
        marker = json.loads((rig.root / layout.MARKER).read_text())
        assert marker["previous"] == __version__ and marker["new"] == NEW
        assert marker["deadline"] - marker["started_at"] == pytest.approx(300)
        clgwd = rig.root / "releases" / NEW / "bin" / "clgwd"
        proc = await asyncio.create_subprocess_exec(str(clgwd), "version",
                                                    stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        assert out.decode().strip() == f"clgwd {NEW}"
        assert not list((rig.config.state.dir / releases.DOWNLOAD_DIR).iterdir())
        assert f"update to {NEW} installed; switching from {__version__} and restarting" \
            in await rig.subjects()


async def test_interrupted_download_resumes_with_range(tmp_path: Path,
                                                       key: Ed25519PrivateKey,
                                                       monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    """A partial download left by a cut is continued with a Range request (206)."""
    statuses: list[int] = []
    real_session = aiohttp.ClientSession
    trace = aiohttp.TraceConfig()

    async def ended(_s: Any, _c: Any, params: aiohttp.TraceRequestEndParams) -> None:
        if params.url.path.startswith("/v1/releases/"):
            statuses.append(params.response.status)

    trace.on_request_end.append(ended)
    monkeypatch.setattr(aiohttp, "ClientSession",
                        lambda *a, **k: real_session(*a, trace_configs=[trace], **k))
    async with update_rig(tmp_path, key) as rig:
        bundle = await asyncio.to_thread(fake_bundle, tmp_path, NEW, key)
        await rig.publish(bundle)
        data = await asyncio.to_thread(bundle.read_bytes)
        folder = rig.config.state.dir / releases.DOWNLOAD_DIR
        await asyncio.to_thread(folder.mkdir, parents=True)
        await asyncio.to_thread((folder / f"{NEW}.part").write_bytes, data[:len(data) // 2])
        await rig.apply_and_wait()
        assert statuses == [206]
        assert await asyncio.to_thread(layout.current_version, rig.root) == NEW


async def test_downgrade_needs_a_rollback_release(tmp_path: Path,
                                                  key: Ed25519PrivateKey) -> None:
    """An older release is refused unless the cloud publishes it as a rollback release."""
    async with update_rig(tmp_path, key) as rig:
        await rig.publish(await asyncio.to_thread(fake_bundle, tmp_path, "0.0.1", key))
        answer = await rig.call("update.check")
        assert answer["available"] is False
        assert "older than the running" in answer["last_check"]["note"]
        await rig.publish(await asyncio.to_thread(fake_bundle, tmp_path, "0.0.1", key),
                          rollback=True)
        answer = await rig.call("update.check")
        assert answer["available"] is True and answer["release"]["rollback"] is True


async def test_bundle_signed_by_another_key_is_refused(tmp_path: Path,
                                                       key: Ed25519PrivateKey) -> None:
    """A release not signed by the release key is not installed; the alert says why."""
    async with update_rig(tmp_path, key) as rig:
        other = Ed25519PrivateKey.generate()
        await rig.publish(await asyncio.to_thread(fake_bundle, tmp_path, NEW, other))
        await rig.apply_and_wait()
        assert rig.restarts == []
        assert await asyncio.to_thread(layout.current_version, rig.root) == __version__
        [alert] = await rig.store.alerts.active()
        assert alert.code == "system.update_failed"
        assert "bad signature" in alert.message
        status = await rig.call("update.status")
        assert status["last_update"]["ok"] is False


async def test_release_that_reports_another_version_is_not_switched_to(
        tmp_path: Path, key: Ed25519PrivateKey) -> None:
    """The smoke test of the installed clgwd must print the release's version."""
    async with update_rig(tmp_path, key) as rig:
        await rig.publish(await asyncio.to_thread(fake_bundle, tmp_path, NEW, key,
                                                  reports="0.0.0"))
        await rig.apply_and_wait()
        assert rig.restarts == []
        assert await asyncio.to_thread(layout.current_version, rig.root) == __version__
        assert not (rig.root / "releases" / NEW).exists()
        [alert] = await rig.store.alerts.active()
        assert "the installed clgwd reports clgwd 0.0.0" in alert.message


async def test_oversize_offer_is_refused_before_download(tmp_path: Path,
                                                         key: Ed25519PrivateKey) -> None:
    """An offer over system.update_max_bytes is refused without downloading."""
    offer = releases.Offer(NEW, 2 << 20, "0" * 64, f"/v1/releases/{NEW}")
    with pytest.raises(releases.UpdateFailed, match="over the 1048576-byte limit"):
        await releases.download("https://127.0.0.1:9", None, offer,  # type: ignore[arg-type]
                                tmp_path, max_bytes=1 << 20, limit=5)
    assert not (tmp_path / releases.DOWNLOAD_DIR).exists()


# -- trial, confirmation and rollback inside the daemon -------------------------------------


@dataclass
class TrialRig:
    config: ClgwdConfig
    root: Path
    store: Store
    router: CommandRouter
    system: SystemComponent
    statuses: dict[str, ComponentStatus]
    restarts: list[str]


def _running(**details: Any) -> ComponentStatus:
    return ComponentStatus(ComponentState.RUNNING, "", time.time(), details)


@contextlib.asynccontextmanager
async def trial_rig(tmp: Path, *, marker_deadline: float | None,
                    note: dict[str, Any] | None = None,
                    system: dict[str, Any] | None = None) -> AsyncIterator[TrialRig]:
    """The daemon just restarted as ``__version__`` after a switch from 0.0.9."""
    root = await asyncio.to_thread(fake_root, tmp, "0.0.9")
    await asyncio.to_thread(_add_release, root, __version__)
    await asyncio.to_thread(_add_release, root, "0.0.8")
    await asyncio.to_thread(layout.switch, root, __version__)
    if marker_deadline is not None:
        await asyncio.to_thread(layout.write_json, root / layout.MARKER, {
            "previous": "0.0.9", "new": __version__, "started_at": time.time(),
            "deadline": time.time() + marker_deadline})
    if note is not None:
        await asyncio.to_thread(layout.write_json, root / layout.NOTE, note)
    config = parse_config(json.dumps({"state": {"dir": str(tmp / "state")},
                                      "control": {"socket": str(tmp / "control.sock")},
                                      "system": {"release_root": str(root),
                                                 **(system or {})}}))
    await asyncio.to_thread((tmp / "state").mkdir, exist_ok=True)
    statuses = {"store": _running(), "link": _running(link_state="backoff")}
    restarts: list[str] = []
    router = CommandRouter()

    async def reload() -> dict[str, Any]:
        return {"applied": True, "errors": []}

    async with Store(config) as store:
        hooks = DaemonHooks(config=lambda: config, config_path=None, reload=reload,
                            restart=restarts.append, statuses=lambda: statuses)
        component = SystemComponent(store, router, hooks)
        async with component:
            yield TrialRig(config, root, store, router, component, statuses, restarts)


def _add_release(root: Path, version: str) -> None:
    (root / "releases" / version / "bin").mkdir(parents=True)
    (root / "releases" / version / "bin" / "clgwd").write_text("#!/bin/sh\n")
    (root / "releases" / version / layout.COMPLETE).write_text("1\n")


async def _subjects(store: Store) -> list[str]:
    return [e.subject for e in await store.history.query(EventFilter())][::-1]


async def test_trial_is_confirmed_once_healthy(tmp_path: Path) -> None:
    """The new release confirms itself when all components run and the link is online:
    marker gone, success recorded, releases beyond the last two removed."""
    async with trial_rig(tmp_path, marker_deadline=60) as rig:
        status = await rig.router.call("update.status", {}, CLI)
        assert status["trial"]["previous"] == "0.0.9"
        await asyncio.sleep(0.3)
        assert (rig.root / layout.MARKER).exists()  # link not online yet
        rig.statuses["link"] = _running(link_state="online")
        await wait_until(lambda: not (rig.root / layout.MARKER).exists())
        for _ in range(200):
            last = (await rig.router.call("update.status", {}, CLI))["last_update"]
            if last is not None:
                break
            await asyncio.sleep(0.02)
        subjects = await _subjects(rig.store)
        assert any(s.startswith(f"update to {__version__} succeeded") for s in subjects)
        assert sorted(p.name for p in (rig.root / "releases").iterdir()) == \
            sorted(["0.0.9", __version__])
        status = await rig.router.call("update.status", {}, CLI)
        assert status["last_update"]["ok"] is True
        assert status["last_update"]["version"] == __version__
        assert status["releases"] == sorted(["0.0.9", __version__], key=parse_version)
        assert rig.restarts == []


async def test_trial_rolls_back_itself_at_the_deadline(tmp_path: Path) -> None:
    """Still unhealthy at the deadline: the previous release is switched back and the
    daemon restarts into it; the note says why."""
    async with trial_rig(tmp_path, marker_deadline=1.5) as rig:
        await wait_until(lambda: bool(rig.restarts), 15)
        assert "unhealthy (the cloud link is backoff)" in rig.restarts[0]
        assert await asyncio.to_thread(layout.current_version, rig.root) == "0.0.9"
        note = json.loads((rig.root / layout.NOTE).read_text())
        assert note["outcome"] == "rolled_back" and note["to"] == "0.0.9"


async def test_rollback_note_is_recorded_at_start(tmp_path: Path) -> None:
    """After a rollback by the standalone program, the old release records it: history
    event (upstream), alert naming the reason, last update failed; the note is consumed."""
    note = {"outcome": "rolled_back", "from": "99.0.0", "to": __version__,
            "reason": "the new release kept failing to start", "at": time.time()}
    async with trial_rig(tmp_path, marker_deadline=None, note=note) as rig:
        subject = f"update to 99.0.0 rolled back to {__version__}: the new release kept " \
                  "failing to start"
        assert subject in await _subjects(rig.store)
        [alert] = await rig.store.alerts.active()
        assert alert.code == "system.update_failed" and "kept failing to start" in alert.message
        assert not (rig.root / layout.NOTE).exists()
        kinds = [r.kind for r in await rig.store.outbox.pending(0, 100)]
        assert "event" in kinds and "alert" in kinds


async def test_status_pause_and_resume(tmp_path: Path) -> None:
    """update.status has the fields of the interface; pause/resume persist and are events."""
    async with trial_rig(tmp_path, marker_deadline=None) as rig:
        status = await rig.router.call("update.status", {}, CLI)
        for name in ("current_version", "last_update", "last_check", "next_check", "paused"):
            assert name in status
        assert status["mode"] == "releases" and status["paused"] is False
        assert (await rig.router.call("update.pause", {}, CLI))["paused"] is True
        assert (await rig.router.call("update.status", {}, CLI))["paused"] is True
        assert (await rig.router.call("update.resume", {}, CLI))["paused"] is False
        subjects = await _subjects(rig.store)
        assert "automatic updates paused" in subjects
        assert "automatic updates resumed" in subjects


def test_marker_never_points_at_a_missing_release(tmp_path: Path) -> None:
    """begin_switch refuses a version that is not completely installed (marker removed
    by the rollback program at the next run: nothing to roll back to was lost)."""
    root = fake_root(tmp_path, "0.0.9")
    with pytest.raises(layout.LayoutError):
        releases.begin_switch(root, "0.0.9", NEW, 300)
    assert layout.current_version(root) == "0.0.9"
    assert layout.rollback(root, "unit-failed").endswith("0.0.9 stays")
    assert not (root / layout.MARKER).exists()
    assert os.path.islink(root / "current")


async def test_cli_update_status_json_and_pause(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """clgwd update status --json (control socket) has the interface's fields; pause and
    resume go through the same socket; the text view names the version."""
    async with trial_rig(tmp_path, marker_deadline=None) as rig:
        async def reload() -> dict[str, object]:
            return {"applied": False, "errors": []}

        async with ControlServer(rig.config, dict, reload, rig.router) as control:
            sock = str(control.path)

            def run(*args: str) -> int:
                return cli.main(["update", *args, "--socket", sock])

            assert await asyncio.to_thread(run, "status", "--json") == 0
            view = json.loads(capsys.readouterr().out)
            assert {"current_version", "last_update", "last_check", "next_check",
                    "paused"} <= set(view)
            assert view["current_version"] == __version__ and view["paused"] is False
            assert await asyncio.to_thread(run, "pause") == 0
            assert "Automatic:       paused" in capsys.readouterr().out
            assert await asyncio.to_thread(run, "resume") == 0
            text = capsys.readouterr().out
            assert f"Current version: {__version__} (updates: releases)" in text
            assert "Automatic:       on" in text
        events = [e for e in await rig.store.history.query(EventFilter())
                  if e.subject == "automatic updates paused"]
        assert events and events[0].actor == "local:cli"


async def test_no_new_update_while_on_trial(tmp_path: Path) -> None:
    """A release on trial is not replaced by another update before it is confirmed."""
    async with trial_rig(tmp_path, marker_deadline=60) as rig:
        with pytest.raises(ActionInProgress, match="still on trial"):
            await rig.router.call("update.apply", {}, CLI)


@pytest.mark.parametrize(("script", "ok"), [
    ("echo Reading package lists; echo 3 packages upgraded", True),
    ("echo dpkg was interrupted >&2; exit 100", False),
])
async def test_os_security_updates_run_in_the_same_update(tmp_path: Path, script: str,
                                                          ok: bool) -> None:
    """system.os_update_command runs first in every update; its outcome is an event, in
    update.status, and a failure raises system.update_failed naming the OS step."""
    async with trial_rig(tmp_path, marker_deadline=None,
                         system={"os_update_command": ["sh", "-c", script]}) as rig:
        await rig.router.call("update.apply", {}, CLI)
        await wait_until(lambda: rig.system.tracker.current.message == "idle")
        status = await rig.router.call("update.status", {}, CLI)
        assert status["last_os_update"]["ok"] is ok
        subjects = await _subjects(rig.store)
        if ok:
            assert "OS security updates done: 3 packages upgraded" in subjects
        else:
            assert "OS security updates failed: exited with code 100 (dpkg was " \
                   "interrupted)" in subjects
            messages = [a.message for a in await rig.store.alerts.active()]
            assert any("OS security updates" in m for m in messages), messages
        # the release step still ran after it (no cloud link in this rig)
        assert any(s.startswith("update failed: this gateway has no cloud link")
                   for s in subjects)
