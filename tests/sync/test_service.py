"""The sync component: schedule, "Sync now", never two at once, status, commands, CLI."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from clgwd.commands import CommandContext, CommandRouter
from clgwd.component import ComponentState
from clgwd.pbx.model import SourceAuthError
from clgwd.retry import Backoff
from clgwd.store import Store
from clgwd.sync.component import PbxNotConfigured, SyncBusy, SyncPhase, SyncService
from tests.retry_helpers import RecordingRandom
from tests.sync.helpers import CSV, FakeSource, config, users, with_fake


async def test_without_a_pbx_it_idles_and_says_so(store: Store, state_dir: Path) -> None:
    """No PBX configured: running, message 'no PBX configured', commands refuse clearly."""
    async with SyncService(config(state_dir), store) as svc:
        assert svc.tracker.current.state == ComponentState.RUNNING
        assert svc.tracker.current.message == "no PBX configured"
        with pytest.raises(PbxNotConfigured):
            await svc.sync(actor="local:cli")


async def test_sync_now_syncs_the_sample_directory(store: Store, state_dir: Path) -> None:
    """The shipped CSV syncs: 20 read, all 20 synced (5 flagged), irregularities reported."""
    cfg = config(state_dir, f"pbx: {{type: csv, file: {{path: {CSV}}}}}\n")
    async with SyncService(cfg, store) as svc:
        out = await svc.sync(actor="local:cli")
    assert out.result == "ok"
    assert (out.counts["read"], out.counts["eligible"], out.counts["created"]) == (20, 20, 20)
    assert out.irregularities["no_email_count"] == 3
    assert out.irregularities["duplicate_email_count"] == 2
    assert svc.last is not None and svc.last["result"] == "ok"


async def test_never_two_syncs_at_once(store: Store, state_dir: Path) -> None:
    """A second "Sync now" while one runs is refused with sync_busy."""
    cfg = config(state_dir, f"pbx: {{type: csv, file: {{path: {CSV}}}}}\n")
    async with SyncService(cfg, store) as svc:
        source = with_fake(svc, FakeSource(users(3)))
        source.delay = 0.5
        first = asyncio.create_task(svc.sync(actor="a"))
        await source.started.wait()
        assert svc.phase == SyncPhase.SYNCING
        with pytest.raises(SyncBusy):
            await svc.sync(actor="b")
        with pytest.raises(SyncBusy):
            await svc.preview(actor="c")
        assert (await first).result == "ok"
    assert source.reads == 1


async def test_schedule_runs_first_sync_and_keeps_last_and_next(
        store: Store, state_dir: Path) -> None:
    """The loop syncs at start, then plans the next run one interval later."""
    cfg = config(state_dir, f"pbx: {{type: csv, file: {{path: {CSV}}}}}\n"
                 "sync: {interval_minutes: 20}\n")
    async with SyncService(cfg, store) as svc, asyncio.TaskGroup() as tg:
        task = tg.create_task(svc.run(), name="clgwd[sync].run")
        for _ in range(200):
            if svc.last is not None and svc.next_run_at is not None:
                break
            await asyncio.sleep(0.02)
        task.cancel()
    assert svc.last is not None and svc.last["trigger"] == "schedule"
    assert svc.next_run_at is not None
    assert 19 * 60 < svc.next_run_at - svc.last["started_at"] <= 20 * 60 + 5
    details = svc.tracker.current.details
    assert details["last_run"]["result"] == "ok" and details["interval_minutes"] == 20


async def test_auth_failure_blocks_the_schedule(store: Store, state_dir: Path) -> None:
    """Refused credentials: degraded, no scheduled retries until config or sync now."""
    cfg = config(state_dir, f"pbx: {{type: csv, file: {{path: {CSV}}}}}\n")
    async with SyncService(cfg, store) as svc:
        source = with_fake(svc, FakeSource(users(1)))
        source.error = SourceAuthError("invalid credentials")
        out = await svc.sync(actor="System", trigger="schedule")
        assert out.result == "failed"
        assert svc.phase == SyncPhase.BLOCKED
        assert svc._next_delay() is None
        assert svc.tracker.current.state == ComponentState.DEGRADED


async def test_unavailable_connector_blocks_instead_of_retrying(
        store: Store, state_dir: Path) -> None:
    """MiVoice Office 400: the run fails with the clear message and is not retried."""
    cfg = config(state_dir, "pbx: {type: mivoice_office_400, host: 192.0.2.4, port: 443}\n")
    async with SyncService(cfg, store) as svc:
        out = await svc.sync(actor="System", trigger="schedule")
        assert out.error_code == "connector_not_available"
        assert "connector not available for this PBX type yet" in out.error
        assert svc.phase == SyncPhase.BLOCKED and svc._next_delay() is None
        assert "connector not available" in svc.tracker.current.message


async def test_failed_read_retries_sooner_with_backoff(store: Store, state_dir: Path) -> None:
    cfg = config(state_dir, f"pbx: {{type: csv, file: {{path: {tmp_missing(state_dir)}}}}}\n")
    async with SyncService(cfg, store) as svc:
        out = await svc.sync(actor="System", trigger="schedule")
        assert out.result == "failed" and out.error_code == "pbx_bad_data"
        delay = svc._next_delay()
        assert delay is not None and 5 <= delay <= 30


def tmp_missing(state_dir: Path) -> Path:
    return state_dir / "no-such.csv"


async def test_commands_are_registered_and_answer(store: Store, state_dir: Path) -> None:
    """sync.now and sync.preview through the command router (cloud, web and CLI path)."""
    router = CommandRouter()
    cfg = config(state_dir, f"pbx: {{type: csv, file: {{path: {CSV}}}}}\n")
    async with SyncService(cfg, store, router) as svc:
        assert router.methods()["sync.now"] and router.methods()["sync.preview"]
        assert router.is_mutating("sync.now") and not router.is_mutating("sync.preview")
        preview = await router.call("sync.preview", {}, CommandContext("cloud"))
        assert preview["result"] == "preview" and len(preview["changes"]) == 20
        assert svc.last is None  # a preview is not a sync
        done = await router.call("sync.now", {}, CommandContext("cloud"))
        assert done["result"] == "ok" and done["actor"] == "cloud"


async def test_config_reload_switches_source(store: Store, state_dir: Path) -> None:
    """apply_config with a PBX turns a not-configured service into a waiting one."""
    async with SyncService(config(state_dir), store) as svc:
        assert svc.phase == SyncPhase.NOT_CONFIGURED
        await svc.apply_config(config(state_dir, f"pbx: {{type: csv, file: {{path: {CSV}}}}}\n"))
        assert svc.phase == SyncPhase.WAITING
        assert (await svc.sync(actor="x")).result == "ok"


async def test_last_run_survives_a_restart(store: Store, state_dir: Path) -> None:
    """The last result is read back from the run log; a failed one is retried soon."""
    cfg = config(state_dir, f"pbx: {{type: csv, file: {{path: {tmp_missing(state_dir)}}}}}\n")
    async with SyncService(cfg, store) as svc:
        await svc.sync(actor="System", trigger="schedule")
    async with SyncService(cfg, store) as again:
        assert again.last is not None and again.last["result"] == "failed"
        delay = again._next_delay()
        assert delay is not None and delay <= 30


async def test_failed_reads_wait_by_the_shared_retry_policy(store: Store,
                                                            state_dir: Path) -> None:
    """The schedule's retry after failed reads comes from ``clgwd.retry.Backoff``:
    windows grow from the base and are capped by the interval."""
    rng = RecordingRandom()
    cfg = config(state_dir, f"pbx: {{type: csv, file: {{path: {tmp_missing(state_dir)}}}}}\n"
                 "sync: {interval_minutes: 2}\n")
    async with SyncService(cfg, store, retry=Backoff(30.0, 30.0, rng)) as svc:
        for _ in range(4):
            await svc.sync(actor="System", trigger="schedule")
            assert svc._next_delay() == 5.0  # the recording source says 0: the floor
    assert rng.windows == [30.0, 60.0, 120.0, 120.0]
