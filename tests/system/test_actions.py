"""Reboot, factory reset and updates: answer first, record, act, one at a time."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import pytest

from clgwd.store import EventFilter
from clgwd.system import reset
from clgwd.system.errors import ActionInProgress, InvalidParams, UpdatesUnmanaged
from tests.system.conftest import MakeRig, system_text, wait_until


async def test_reboot_answers_records_then_runs_the_command(make_rig: MakeRig) -> None:
    """The answer and the event (with its outbox record) come before the command runs."""
    async with make_rig() as rig:
        marker = rig.tmp / "rebooted"
        answer = await rig.call("system.reboot")
        assert answer == {"state": "rebooting", "reboot_in_s": 0.2}
        assert not marker.exists()
        assert await rig.subjects() == ["reboot requested"]
        assert "event" in await rig.outbox_kinds()
        await wait_until(marker.exists)
        async with asyncio.timeout(10):
            while await rig.subjects() != ["reboot requested", "reboot command succeeded"]:
                await asyncio.sleep(0.02)
        assert rig.system.tracker.current.message == "reboot under way"  # until it is gone


async def test_reboot_restarts_only_the_daemon_when_configured(make_rig: MakeRig,
                                                               tmp_path: Path) -> None:
    """system.reboot_restarts_daemon (the demo): Reboot asks the daemon to restart and
    never runs reboot_command, so the machine is untouched."""
    async with make_rig(system_text(tmp_path, ", reboot_restarts_daemon: true")) as rig:
        await rig.call("system.reboot", actor="local:web:admin")
        await wait_until(lambda: bool(rig.restarts))
        assert "the daemon only" in rig.restarts[0]
        await asyncio.sleep(0.3)
        assert not (rig.tmp / "rebooted").exists()
        assert (await rig.subjects())[-1].startswith("reboot: restarting the daemon only")


async def test_second_reboot_is_refused_while_one_is_pending(make_rig: MakeRig) -> None:
    async with make_rig() as rig:
        await rig.call("system.reboot")
        with pytest.raises(ActionInProgress, match="reboot is already under way"):
            await rig.call("system.reboot")
        with pytest.raises(ActionInProgress):
            await rig.call("update.apply")


async def test_failed_reboot_raises_an_alert_and_can_be_retried(make_rig: MakeRig,
                                                               tmp_path: Path) -> None:
    text = system_text(tmp_path).replace("echo rebooted", "echo no polkit rule >&2; exit 1")
    async with make_rig(text) as rig:
        await rig.call("system.reboot")
        await wait_until(lambda: rig.system.tracker.current.message == "idle")
        alerts = await rig.store.alerts.active()
        assert [(a.code, a.message) for a in alerts] == [
            ("system.reboot_failed", "Reboot failed: exited with code 1 (no polkit rule)")]
        assert (await rig.subjects())[-1] == "reboot failed"
        assert (await rig.call("system.reboot"))["state"] == "rebooting"


async def test_reboot_command_that_hangs_is_killed_at_its_timeout(make_rig: MakeRig,
                                                                   tmp_path: Path) -> None:
    text = system_text(tmp_path).replace("echo rebooted > ", "sleep 30; echo ")
    text = text.replace("reboot_timeout: 5", "reboot_timeout: 0.3")
    async with make_rig(text) as rig:
        await rig.call("system.reboot")
        await wait_until(lambda: rig.system.tracker.current.message == "idle")
        [alert] = await rig.store.alerts.active()
        assert "timed out after" in alert.message


async def test_factory_reset_needs_the_word_and_commits_with_a_marker(
        make_rig: MakeRig) -> None:
    async with make_rig() as rig:
        state = rig.config.state.dir
        for params in ({}, {"confirm": "Revert"}, {"confirm": "revert", "now": True}):
            with pytest.raises(InvalidParams):
                await rig.call("system.factory_reset", params)
        assert not await asyncio.to_thread(reset.reset_pending, state)
        answer = await rig.call("system.factory_reset", {"confirm": "revert"})
        assert answer == {"state": "resetting", "restart_in_s": 0.2}
        assert await asyncio.to_thread(reset.reset_pending, state) and rig.restarts == []
        assert await rig.subjects() == ["factory reset requested"]
        with pytest.raises(ActionInProgress):
            await rig.call("system.factory_reset", {"confirm": "revert"})
        await wait_until(lambda: bool(rig.restarts))
        assert rig.restarts == ["factory reset"]


def _fill_state(state: Path) -> None:
    (state / "clgwd.db").write_bytes(b"SQLite format 3\x00 admin hash")
    (state / "secret.key").write_bytes(b"k" * 32)
    (state / "cloud").mkdir()
    (state / "cloud" / "identity.pem").write_text("key")
    (state / "dhcp").mkdir()


def test_pending_reset_wipes_everything_and_leaves_a_note(tmp_path: Path) -> None:
    _fill_state(tmp_path)
    reset.write_marker(tmp_path, "cloud")
    done = reset.finish_pending_reset(tmp_path)
    assert done is not None and done["actor"] == "cloud"
    assert sorted(p.name for p in tmp_path.iterdir()) == [reset.DONE_NOTE]
    assert reset.finish_pending_reset(tmp_path) is None
    assert reset.take_done_note(tmp_path) == done
    assert list(tmp_path.iterdir()) == []


def test_interrupted_wipe_is_finished_at_the_next_start(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash half way through the wipe leaves the marker: the next start wipes again."""
    _fill_state(tmp_path)
    (tmp_path / reset.PENDING_MARKER).write_text("{not json")  # damaged marker = reset
    real_unlink = Path.unlink
    calls = 0

    def crash_after_first(self: Path, missing_ok: bool = False) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise OSError("power cut")
        real_unlink(self, missing_ok=missing_ok)

    monkeypatch.setattr(Path, "unlink", crash_after_first)
    with pytest.raises(OSError, match="power cut"):
        reset.finish_pending_reset(tmp_path)
    monkeypatch.setattr(Path, "unlink", real_unlink)
    assert reset.reset_pending(tmp_path)
    assert reset.finish_pending_reset(tmp_path) == {
        "actor": "unknown", "requested_at": None,
        "completed_at": json.loads((tmp_path / reset.DONE_NOTE).read_text())["completed_at"]}
    assert sorted(p.name for p in tmp_path.iterdir()) == [reset.DONE_NOTE]


async def test_completed_reset_is_recorded_in_the_new_history(make_rig: MakeRig,
                                                             tmp_path: Path) -> None:
    state = tmp_path / "state"
    await asyncio.to_thread(state.mkdir)
    await asyncio.to_thread(reset.write_marker, state, "local:web:admin")
    await asyncio.to_thread(reset.finish_pending_reset, state)
    async with make_rig() as rig:
        [event] = await rig.store.history.query(EventFilter(asset="Gateway"))
        assert (event.actor, event.subject) == ("local:web:admin", "factory reset completed")
    assert not await asyncio.to_thread((state / reset.DONE_NOTE).exists)


async def test_update_apply_runs_once_and_records_the_result(make_rig: MakeRig) -> None:
    async with make_rig() as rig:
        answer = await rig.call("update.apply")
        assert answer["state"] == "started"
        with pytest.raises(ActionInProgress, match="update is already under way"):
            await rig.call("update.apply")
        await wait_until(lambda: rig.system.tracker.current.message == "idle")
        assert (rig.tmp / "updates").read_text() == "updated\n"
        view = await rig.call("update.schedule.get")
        assert view["last_update"]["exit_code"] == 0 and view["last_update"]["ok"]
        assert view["last_update"]["actor"] == "cloud"
        assert (await rig.subjects())[-1] == "update succeeded"


async def test_failed_update_raises_an_alert_with_the_output(make_rig: MakeRig,
                                                            tmp_path: Path) -> None:
    text = system_text(tmp_path).replace("echo updated >> ", "echo no space left; exit 2; ")
    async with make_rig(text) as rig:
        await rig.call("update.apply")
        await wait_until(lambda: rig.system.tracker.current.message == "idle")
        [alert] = await rig.store.alerts.active()
        assert alert.code == "system.update_failed"
        assert alert.message == "Update failed: exited with code 2 (no space left)"


async def test_update_without_a_command_is_refused_clearly(make_rig: MakeRig,
                                                          tmp_path: Path) -> None:
    async with make_rig(f"state: {{dir: {tmp_path / 'state'}}}\n") as rig:
        with pytest.raises(UpdatesUnmanaged, match="updates are not managed on this gateway"):
            await rig.call("update.apply")
        with pytest.raises(UpdatesUnmanaged):
            await rig.call("update.schedule", {"frequency": "daily", "time": "02:00",
                                               "timezone": "UTC"})


async def test_schedule_from_the_cloud_is_validated_and_persisted(make_rig: MakeRig) -> None:
    async with make_rig() as rig:
        with pytest.raises(InvalidParams, match="timezone: unknown time zone"):
            await rig.call("update.schedule", {"frequency": "daily", "time": "02:00",
                                               "timezone": "Europe/Atlantis"})
        answer = await rig.call("update.schedule", {"frequency": "daily", "time": "02:30",
                                                    "timezone": "Europe/Paris"})
        assert answer["next_window"]["utc"] == "2026-03-29T01:30+00:00"  # DST day
        assert answer["next_window"]["local"] == "2026-03-29T03:30+02:00"
    async with make_rig() as rig:
        view = await rig.call("update.schedule.get")
        assert {k: view[k] for k in ("frequency", "time", "timezone")} == {
            "frequency": "daily", "time": "02:30", "timezone": "Europe/Paris"}
        await rig.call("update.schedule", {})
        assert await rig.call("update.schedule.get") == {"update_running": False, "managed": True}


async def test_update_runs_at_the_window_and_not_before(make_rig: MakeRig) -> None:
    """With a fake clock: nothing before the window, one run when it is reached."""
    async with make_rig() as rig:
        await rig.call("update.schedule", {"frequency": "weekly", "weekdays": ["sun"],
                                           "time": "02:30", "timezone": "Europe/Paris"})
        updates = rig.tmp / "updates"
        rig.clock.now = dt.datetime(2026, 3, 29, 1, 29, tzinfo=dt.UTC)
        rig.system.wake()
        await asyncio.sleep(0.3)
        assert not updates.exists()
        rig.clock.now = dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC)
        rig.system.wake()
        await wait_until(updates.exists)
        await wait_until(lambda: rig.system.tracker.current.message == "idle")
        view = await rig.call("update.schedule.get")
        assert view["last_update"]["actor"] == "system:update-schedule"
        assert view["next_window"]["utc"] == "2026-04-05T00:30+00:00"
        rig.system.wake()
        await asyncio.sleep(0.3)
        assert updates.read_text() == "updated\n"


async def test_stored_schedule_that_no_longer_validates_does_not_stop_start_up(
        make_rig: MakeRig) -> None:
    """A zone removed from tzdata since the schedule was saved: dropped, not fatal."""
    async with make_rig() as rig:
        await rig.store.settings.set("system.update_schedule", {
            "frequency": "daily", "weekdays": [], "time": "02:00", "timezone": "Gone/Zone"})
    async with make_rig() as rig:
        assert await rig.call("update.schedule.get") == {"update_running": False, "managed": True}


@pytest.mark.parametrize("shared", ["/var/lib", "/", "/tmp/../etc"])
def test_a_shared_directory_is_never_wiped(shared: str) -> None:
    """A state dir misconfigured as a system directory refuses the reset up front."""
    with pytest.raises(reset.UnsafeStateDir, match="shared directory"):
        reset.write_marker(Path(shared), "cloud")
    with pytest.raises(reset.UnsafeStateDir):
        reset.check_wipeable(Path(shared))
