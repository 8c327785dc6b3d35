"""Component ``sync``: the schedule, "Sync now", preview, and the sync status.

One lock guarantees that two syncs never run at once (scheduled, CLI, web and cloud
all come through here); a second request while one runs is refused with
``sync_busy`` rather than queued, so an impatient operator cannot stack runs.

The schedule is an explicit state machine (``SyncPhase``): ``not_configured`` (no PBX;
idle until a config reload), ``waiting`` (next run at ``next_run_at``), ``syncing``,
and ``blocked`` (the PBX refused the credentials: retrying would only lock the account,
so it waits for a config change or "Sync now"). Failed reads retry sooner than the
interval with capped exponential backoff and full jitter.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from enum import StrEnum
from typing import Any, Final, Self

from clgwd.commands import CommandContext, CommandRouter
from clgwd.component import ComponentState, StatusTracker
from clgwd.config import ClgwdConfig
from clgwd.errors import ClgwdError
from clgwd.metrics import Metrics
from clgwd.pbx.factory import build_source
from clgwd.store import Store
from clgwd.sync.engine import SyncEngine, SyncOutcome

_LOGGER = logging.getLogger(__name__)

RETRY_BASE: Final = 30.0
BLOCKING_ERRORS: Final = frozenset({"pbx_auth_failed", "connector_not_available"})
"""Failures that retrying cannot fix (and that could lock the PBX account): scheduled
runs stop until the config changes or someone runs "Sync now"."""
RETRY_FLOOR: Final = 5.0


class SyncPhase(StrEnum):
    NOT_CONFIGURED = "not_configured"
    WAITING = "waiting"
    SYNCING = "syncing"
    BLOCKED = "blocked"
    STOPPED = "stopped"


class SyncBusy(ClgwdError):
    code = "sync_busy"
    http_status = 409


class PbxNotConfigured(ClgwdError):
    code = "pbx_not_configured"
    http_status = 409


class SyncService:
    """Owns the sync schedule and the ``sync.now`` / ``sync.preview`` commands."""

    name = "sync"

    def __init__(self, config: ClgwdConfig, store: Store, commands: CommandRouter | None = None,
                 metrics: Metrics | None = None) -> None:
        self.store = store
        self.tracker = StatusTracker(self.name)
        self.phase = SyncPhase.STOPPED
        self.last: dict[str, Any] | None = None
        self.next_run_at: float | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._failures = 0
        self._config = config
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clgwd-sync")
        self._engine = self._build_engine(config)
        self._runs = metrics.counter("clgwd_sync_runs_total", "User sync runs by result",
                                     ["result"]) if metrics else None
        if commands is not None:
            commands.register("sync.now", self._cmd_now, mutating=True)
            commands.register("sync.preview", self._cmd_preview, mutating=False)

    # -- component lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self.tracker.set(ComponentState.STARTING)
        if self._engine is not None:
            row = await self.store.db.fetchone(
                "SELECT summary FROM sync_runs WHERE source_id = ?"
                " ORDER BY started_at DESC LIMIT 1", (self._engine.source_id,))
            self.last = json.loads(row["summary"]) if row else None
            # A run that failed before a restart is retried soon, not an interval later.
            self._failures = int(self.last is not None and self.last["result"] != "ok")
        self._set_phase(SyncPhase.NOT_CONFIGURED if self._engine is None
                        else SyncPhase.WAITING)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.tracker.set(ComponentState.STOPPING)
        # A worker still finishing a chunk cannot be interrupted; do not wait for it on
        # the loop (its transaction was already rolled back by cancellation).
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._set_phase(SyncPhase.STOPPED)

    async def run(self) -> None:
        """The schedule loop; cancelled at shutdown (a running sync rolls back)."""
        while True:
            delay = self._next_delay()
            self.next_run_at = None if delay is None else time.time() + delay
            self._refresh_status()
            if not await self._sleep(delay):
                continue  # woken by a config change or a finished "Sync now"
            if self._lock.locked():
                continue
            try:
                await self.sync(actor="System", trigger="schedule")
            except (SyncBusy, PbxNotConfigured):
                continue

    async def apply_config(self, config: ClgwdConfig) -> None:
        if (config.pbx, config.sync) == (self._config.pbx, self._config.sync):
            self._config = config
            return
        self._config = config
        self._engine = self._build_engine(config)
        self._failures = 0
        if not self._lock.locked():
            self._set_phase(SyncPhase.NOT_CONFIGURED if self._engine is None
                            else SyncPhase.WAITING)
        _LOGGER.info("Sync settings changed; source: %s",
                     self._engine.source.describe() if self._engine else "none")
        self._wake.set()

    # -- operations (CLI, web and cloud come here) -----------------------------------------

    async def sync(self, *, actor: str, trigger: str = "now") -> SyncOutcome:
        """Run one sync now; refuse when one is already running."""
        return await self._locked_run(actor=actor, trigger=trigger, preview=False)

    async def preview(self, *, actor: str) -> SyncOutcome:
        """Dry run: read and diff, change nothing (the Connect step report)."""
        return await self._locked_run(actor=actor, trigger="preview", preview=True)

    async def _locked_run(self, *, actor: str, trigger: str, preview: bool) -> SyncOutcome:
        engine = self._engine
        if engine is None:
            raise PbxNotConfigured("no PBX configured (set pbx.type in the config)")
        if self._lock.locked():
            raise SyncBusy("a sync is already running; try again when it has finished")
        async with self._lock:
            previous = self.phase
            self._set_phase(SyncPhase.SYNCING)
            try:
                out = await engine.run(actor=actor, trigger=trigger, preview=preview)
            finally:
                self._set_phase(previous if preview else SyncPhase.WAITING)
        if not preview:
            self._record(out)
        return out

    def _record(self, out: SyncOutcome) -> None:
        self.last = out.summary()
        if self._runs is not None:
            self._runs.labels(out.result).inc()
        if out.result == "ok":
            self._failures = 0
        else:
            self._failures += 1
            if out.error_code in BLOCKING_ERRORS:
                self._set_phase(SyncPhase.BLOCKED)
        self._wake.set()

    # -- schedule ---------------------------------------------------------------------------

    def _next_delay(self) -> float | None:
        """Seconds until the next scheduled run; None means wait for a wake-up."""
        if self._engine is None or self.phase == SyncPhase.BLOCKED:
            return None
        interval = self._config.sync.interval_minutes * 60.0
        if self._failures:
            cap = min(interval, RETRY_BASE * 2 ** (self._failures - 1))
            return max(RETRY_FLOOR, random.uniform(0, cap))  # noqa: S311 - jitter, not crypto
        if self.last is None:
            return 0.0
        finished = float(self.last["started_at"]) + float(self.last["duration"])
        return max(0.0, finished + interval - time.time())

    async def _sleep(self, delay: float | None) -> bool:
        """Wait ``delay`` seconds; False when woken early by ``_wake``."""
        self._wake.clear()
        try:
            async with asyncio.timeout(delay):
                await self._wake.wait()
        except TimeoutError:
            return True
        return False

    # -- status -----------------------------------------------------------------------------

    def _set_phase(self, phase: SyncPhase) -> None:
        if phase != self.phase:
            _LOGGER.debug("Sync phase now %s (was %s)", phase.value, self.phase.value)
        self.phase = phase
        self._refresh_status()

    def status_details(self) -> dict[str, Any]:
        return {"phase": self.phase.value, "last_run": self.last, "next_run_at": self.next_run_at,
                "source": self._engine.source.describe() if self._engine else None,
                "interval_minutes": self._config.sync.interval_minutes}

    def _refresh_status(self) -> None:
        details = self.status_details()
        if self.phase == SyncPhase.STOPPED:
            self.tracker.set(ComponentState.STOPPED, **details)
        elif self.phase == SyncPhase.NOT_CONFIGURED:
            self.tracker.set(ComponentState.RUNNING, "no PBX configured", **details)
        elif self.phase == SyncPhase.BLOCKED:
            error = self.last["error"] if self.last else ""
            self.tracker.set(ComponentState.DEGRADED, f"sync paused until the config changes "
                             f"or sync now: {error}", **details)
        elif self.last is not None and self.last["result"] != "ok":
            self.tracker.set(ComponentState.DEGRADED,
                             f"last sync {self.last['result']}: {self.last['error']}", **details)
        else:
            self.tracker.set(ComponentState.RUNNING, self._ok_message(), **details)

    def _ok_message(self) -> str:
        if self.phase == SyncPhase.SYNCING:
            return "syncing"
        if self.last is None:
            return "waiting for the first sync"
        counts = self.last.get("counts", {})
        return (f"last sync ok: {counts.get('eligible', 0)} users, "
                f"{counts.get('created', 0)} created, {counts.get('updated', 0)} updated, "
                f"{counts.get('deleted', 0)} deleted")

    # -- commands ---------------------------------------------------------------------------

    async def _cmd_now(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        return (await self.sync(actor=ctx.actor, trigger="now")).as_json()

    async def _cmd_preview(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        return (await self.preview(actor=ctx.actor)).as_json()

    def _build_engine(self, config: ClgwdConfig) -> SyncEngine | None:
        source = build_source(config.pbx, self._executor)
        if source is None:
            return None
        return SyncEngine(self.store, source, config.pbx.effective_source_id, config.sync,
                          config.pbx.read_timeout, executor=self._executor)
