"""What a running sync reports: phase, counts, elapsed time, a bar where it can count."""

from __future__ import annotations

import asyncio
from pathlib import Path

from clgwd.commands import CommandContext, CommandRouter
from clgwd.config.pbx import SyncConfig
from clgwd.store import Store
from clgwd.sync.component import SyncService
from clgwd.sync.engine import SyncEngine
from clgwd.sync.progress import Phase, SyncProgress
from tests.sync.helpers import CSV, FakeSource, config, users, with_fake


class CountingSource(FakeSource):
    """A source that can say how far its read is (rows read of the total)."""

    def read_progress(self) -> tuple[int, int | None, str]:
        return 3, len(self.users), "users"


async def test_a_read_is_indeterminate_unless_the_source_counts(store: Store) -> None:
    """While a plain source reads: phase reading, no total; a counting source: done/total
    in its unit."""
    for source, expected in ((FakeSource(users(10)), (None, None, None, False)),
                             (CountingSource(users(10)), (3, 10, "users", True))):
        source.delay = 0.3
        progress = SyncProgress(f"run-{expected[3]}", "now", "local:cli")
        engine = SyncEngine(store, source, f"src{expected[3]}", SyncConfig(), 5)
        run = asyncio.create_task(engine.run(actor="local:cli", trigger="now",
                                             progress=progress))
        await source.started.wait()
        seen = progress.as_json()
        assert seen["phase"] == "reading"
        assert (seen["done"], seen["total"], seen["unit"], seen["determinate"]) == expected
        assert (await run).result == "ok"


async def test_saving_counts_the_changes_written(store: Store) -> None:
    """The saving phase is determinate: every change written of the total, and the counts
    of the read are known by then."""
    progress = SyncProgress("run", "now", "local:cli")
    engine = SyncEngine(store, FakeSource(users(4500)), "pbx", SyncConfig(), 5)
    out = await engine.run(actor="local:cli", trigger="now", progress=progress)
    assert out.result == "ok" and progress.phase == Phase.SAVING
    seen = progress.as_json()
    assert (seen["done"], seen["total"], seen["unit"], seen["determinate"]) == (
        4500, 4500, "changes", True)
    assert seen["counts"]["read"] == 4500 and seen["counts"]["created"] == 4500
    assert seen["elapsed"] >= 0 and seen["run_id"] == out.run_id


async def test_sync_status_shows_the_run_under_way(store: Store, state_dir: Path) -> None:
    """sync.status (and sync.schedule.get) say running with the progress, then not."""
    router = CommandRouter()
    ctx = CommandContext("local:web:admin")
    cfg = config(state_dir, f"pbx: {{type: csv, file: {{path: {CSV}}}}}\n")
    async with SyncService(cfg, store, router) as svc:
        source = with_fake(svc, FakeSource(users(3)))
        source.delay = 0.3
        run = asyncio.create_task(svc.sync(actor="local:web:admin"))
        await source.started.wait()
        status = await router.call("sync.status", {}, ctx)
        assert status["running"] and status["phase"] == "syncing"
        assert status["progress"]["phase"] == "reading"
        assert status["progress"]["actor"] == "local:web:admin"
        schedule = await router.call("sync.schedule.get", {}, ctx)
        assert schedule["running"] and schedule["progress"]["phase"] == "reading"
        await run
        status = await router.call("sync.status", {}, ctx)
        assert not status["running"] and status["progress"] is None
        assert status["last_sync"]["result"] == "ok" and status["queued"] >= 3
