"""Component ``sync``: the schedule, "Sync now", preview, and the sync status.

It also owns the commands of the onboarding page's PBX, Connect and Sync steps
(``pbx.get/set/test``, ``sync.schedule.get/set``, ``inventory.report``; shapes in
docs/api.md). Settings saved there live in the state DB and override the file's
(``clgwd.sync.settings`` has the precedence rule).

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
from clgwd.config.pbx import PbxConfig
from clgwd.config.secret import Secret
from clgwd.errors import ClgwdError
from clgwd.metrics import Metrics
from clgwd.pbx.factory import build_source
from clgwd.pbx.model import ConnectorNotAvailable
from clgwd.store import Action, Event, Store
from clgwd.sync import settings as page
from clgwd.sync.engine import SyncEngine, SyncOutcome
from clgwd.tasks import wait_at_most

_LOGGER = logging.getLogger(__name__)

RETRY_BASE: Final = 30.0
BLOCKING_ERRORS: Final = frozenset({"pbx_auth_failed", "connector_not_available"})
"""Failures that retrying cannot fix (and that could lock the PBX account): scheduled
runs stop until the config changes or someone runs "Sync now"."""
RETRY_FLOOR: Final = 5.0
UNREACHED_ERRORS: Final = frozenset({
    "pbx_read_failed", "pbx_unreachable", "pbx_auth_failed", "pbx_timeout", "pbx_bad_data",
    "connector_not_available"})
"""Failures where the PBX was not read; any other outcome means it was reached."""


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


class PbxTestFailed(ClgwdError):
    """The connection test could not read the PBX; the message says why."""

    code = "pbx_test_failed"
    http_status = 502


def _reached(summary: Mapping[str, Any]) -> bool:
    return summary.get("result") != "failed" or summary.get("error_code") not in \
        UNREACHED_ERRORS


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
        self._overlay: dict[str, Any] | None = None
        """PBX settings saved from the page (``sync.pbx``); None: the file's only."""
        self._page_password: Secret | None = None
        self._interval: int | None = None
        """Sync interval saved from the page (``sync.interval``); None: the file's."""
        self._pbx = config.pbx
        self.connected: bool | None = None
        """The last connection test or sync reached the PBX (None: not tried yet)."""
        self._inventory: dict[str, Any] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="clgwd-sync")
        self._engine = self._build_engine(self._pbx)
        self._runs = metrics.counter("clgwd_sync_runs_total", "User sync runs by result",
                                     ["result"]) if metrics else None
        if commands is not None:
            commands.register("sync.now", self._cmd_now, mutating=True)
            commands.register("sync.preview", self._cmd_preview, mutating=False)
            commands.register("pbx.get", self._cmd_pbx_get, mutating=False)
            commands.register("pbx.set", self._cmd_pbx_set, mutating=True)
            commands.register("pbx.test", self._cmd_pbx_test, mutating=False)
            commands.register("sync.schedule.get", self._cmd_schedule_get, mutating=False)
            commands.register("sync.schedule.set", self._cmd_schedule_set, mutating=True)
            commands.register("inventory.report", self._cmd_inventory, mutating=False)

    # -- component lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self.tracker.set(ComponentState.STARTING)
        await self._load_page_settings()
        await self._load_last()
        if self.last is not None:
            # A run that failed before a restart is retried soon, not an interval later.
            self._failures = int(self.last["result"] != "ok")
            self.connected = _reached(self.last)
        self._set_phase(SyncPhase.NOT_CONFIGURED if self._engine is None
                        else SyncPhase.WAITING)
        return self

    async def _load_last(self) -> None:
        """The last run of the current source (each source keeps its own run log)."""
        self.last = None
        if self._engine is not None:
            row = await self.store.db.fetchone(
                "SELECT summary FROM sync_runs WHERE source_id = ?"
                " ORDER BY started_at DESC LIMIT 1", (self._engine.source_id,))
            self.last = json.loads(row["summary"]) if row else None

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
        await self._use_pbx(self._effective(config.pbx))
        _LOGGER.info("Sync settings changed; source: %s",
                     self._engine.source.describe() if self._engine else "none")

    def _effective(self, file_pbx: PbxConfig) -> PbxConfig:
        """The file's section with the page's settings; a file reload that no longer
        fits the page's settings falls back to the file alone (and says so)."""
        try:
            return page.effective_pbx(file_pbx, self._overlay, self._page_password)
        except page.InvalidPbxSettings as err:
            _LOGGER.warning("PBX settings saved from the page do not apply to the config "
                            "file's pbx section (%s); using the file's", err.message)
            return file_pbx

    async def _use_pbx(self, pbx: PbxConfig) -> None:
        """Switch to ``pbx`` and re-arm the schedule (a new source is untested)."""
        changed = pbx != self._pbx
        new_source = pbx.effective_source_id != self._pbx.effective_source_id
        self._pbx = pbx
        self._engine = self._build_engine(pbx)
        self._failures = 0
        if changed:
            self.connected = None
        if new_source:
            await self._load_last()
        if not self._lock.locked():
            self._set_phase(SyncPhase.NOT_CONFIGURED if self._engine is None
                            else SyncPhase.WAITING)
        self._wake.set()

    async def _load_page_settings(self) -> None:
        self._overlay = await self.store.settings.get(page.SETTING_PBX)
        self._page_password = await self.store.secrets.get(page.SECRET_PASSWORD)
        self._interval = await self.store.settings.get(page.SETTING_INTERVAL)
        if self._overlay is not None or self._page_password is not None:
            self._pbx = self._effective(self._config.pbx)
            self._engine = self._build_engine(self._pbx)

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
            raise PbxNotConfigured("no PBX configured: add it on the PBX page "
                                   "(pbx.set) or set pbx.type in the config")
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
        if self._runs is not None:
            self._runs.labels(out.result).inc()
        self._inventory = None
        if self._engine is None or out.source_id != self._engine.source_id:
            # The PBX was switched while this run read the old one: its result says
            # nothing about the new source (whose own last run was loaded at the switch).
            self._wake.set()
            return
        self.last = out.summary()
        self.connected = _reached(self.last)
        if out.result == "ok":
            self._failures = 0
        else:
            self._failures += 1
            if out.error_code in BLOCKING_ERRORS:
                self._set_phase(SyncPhase.BLOCKED)
        self._wake.set()

    # -- schedule ---------------------------------------------------------------------------

    @property
    def awaiting_sync_now(self) -> bool:
        """A PBX added on the page is first tested and synced by the technician (the
        Connect step, then "Sync now"); the schedule starts after that first sync."""
        return self.last is None and self._overlay is not None

    @property
    def interval_minutes(self) -> int:
        """The page's interval when one was saved, else the file's."""
        return self._interval or self._config.sync.interval_minutes

    def _next_delay(self) -> float | None:
        """Seconds until the next scheduled run; None means wait for a wake-up."""
        if self._engine is None or self.phase == SyncPhase.BLOCKED or self.awaiting_sync_now:
            return None
        interval = self.interval_minutes * 60.0
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
        return not await wait_at_most(self._wake.wait(), delay)

    # -- status -----------------------------------------------------------------------------

    def _set_phase(self, phase: SyncPhase) -> None:
        if phase != self.phase:
            _LOGGER.debug("Sync phase now %s (was %s)", phase.value, self.phase.value)
        self.phase = phase
        self._refresh_status()

    def status_details(self) -> dict[str, Any]:
        return {"phase": self.phase.value, "last_run": self.last, "next_run_at": self.next_run_at,
                "source": self._engine.source.describe() if self._engine else None,
                "interval_minutes": self.interval_minutes}

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
            return ("waiting for the Connect step: test the PBX, then Sync now"
                    if self.awaiting_sync_now else "waiting for the first sync")
        counts = self.last.get("counts", {})
        return (f"last sync ok: {counts.get('eligible', 0)} users, "
                f"{counts.get('created', 0)} created, {counts.get('updated', 0)} updated, "
                f"{counts.get('deleted', 0)} deleted")

    # -- commands ---------------------------------------------------------------------------

    async def _cmd_now(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        return (await self.sync(actor=ctx.actor, trigger="now")).as_json()

    async def _cmd_preview(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        return (await self.preview(actor=ctx.actor)).as_json()

    async def _cmd_pbx_get(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        return page.pbx_view(self._pbx, connected=bool(self.connected),
                             from_page=self._overlay is not None)

    async def _cmd_pbx_set(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        """Validate, persist (settings, password and history in one transaction), switch."""
        overlay = page.overlay_from_params(params)
        raw = params.get("password")
        if raw is not None and not isinstance(raw, str):
            raise page.InvalidPbxSettings("password: must be text, or null to keep it")
        password = Secret(raw) if raw is not None else self._page_password
        pbx = page.effective_pbx(self._config.pbx, overlay, password)
        before = page.pbx_view(self._pbx, connected=False, from_page=False)
        after = page.pbx_view(pbx, connected=False, from_page=False)
        changed = sorted(k for k in ("type", "name", "address", "port", "username", "options")
                         if before[k] != after[k]) + (["password"] if raw is not None else [])
        async with self.store.db.transaction() as tx:
            await self.store.settings.set_in(tx, page.SETTING_PBX, overlay)
            if raw is not None:
                await self.store.secrets.put_in(tx, page.SECRET_PASSWORD, Secret(raw))
            if changed:
                await self.store.history.record(tx, Event(
                    actor=ctx.actor, action=Action.EDIT if self._pbx.type != "none"
                    else Action.CREATE, asset="PBX", subject=pbx.name or pbx.type,
                    properties_changed=changed,
                    core={k: after[k] for k in changed if k != "password"}))
        self._overlay, self._page_password = overlay, password
        _LOGGER.info("PBX settings saved by %s (changed: %s)", ctx.actor, changed or "none")
        await self._use_pbx(pbx)
        return page.pbx_view(pbx, connected=bool(self.connected), from_page=True)

    async def _cmd_pbx_test(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        """The Connect step: read the PBX and report, without syncing anything."""
        out = await self.preview(actor=ctx.actor)
        self.connected = _reached(out.summary())
        if out.result == "failed":
            if out.error_code == ConnectorNotAvailable.code:
                raise ConnectorNotAvailable(out.error)
            raise PbxTestFailed(out.error)
        return {"users": out.counts.get("read", 0), "dids": out.dids,
                "eligible": out.counts.get("eligible", 0),
                "irregularities": out.irregularities, "source": self._describe_source()}

    async def _cmd_schedule_get(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        last = self.last
        last_sync = None if last is None else {
            "at": last["started_at"], "ok": last["result"] == "ok",
            "result": last["result"], "message": last["error"] or self._ok_message(),
            "error_code": last.get("error_code") or None,
            "users": last.get("counts", {}).get("eligible", 0),
            "duration": last["duration"], "counts": last.get("counts", {})}
        return {"interval_minutes": self.interval_minutes, "last_sync": last_sync,
                "next_sync_at": self.next_run_at, "phase": self.phase.value,
                "saved_from_page": self._interval is not None,
                "awaiting_sync_now": self.awaiting_sync_now}

    async def _cmd_schedule_set(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        minutes = page.check_interval(params)
        previous = self.interval_minutes
        async with self.store.db.transaction() as tx:
            await self.store.settings.set_in(tx, page.SETTING_INTERVAL, minutes)
            if minutes != previous:
                await self.store.history.record(tx, Event(
                    actor=ctx.actor, action=Action.EDIT, asset="Sync schedule",
                    subject=f"every {minutes} minutes", properties_changed=["interval_minutes"],
                    core={"interval_minutes": minutes, "previous": previous}))
        self._interval = minutes
        self._wake.set()  # re-arm: the loop computes the next run with the new interval
        return await self._cmd_schedule_get({}, ctx)

    async def _cmd_inventory(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        """Users and DIDs synced (queued to the cloud), over every source; cached until
        the next sync, since the overview asks on every refresh."""
        if self._inventory is None:
            row = await self.store.db.fetchone(
                "SELECT COUNT(*) FROM sync_snapshot WHERE deleted = 0")
            dids = await self.store.db.fetchone(
                "SELECT COUNT(DISTINCT d.value) FROM sync_snapshot AS s,"
                " json_each(s.user, '$.dids') AS d WHERE s.deleted = 0")
            self._inventory = {"users": int(row[0]) if row else 0,
                               "dids": int(dids[0]) if dids else 0}
        return {**self._inventory, "source_id": self._pbx.effective_source_id
                if self._pbx.type != "none" else None}

    def _describe_source(self) -> str | None:
        return self._engine.source.describe() if self._engine else None

    def _build_engine(self, pbx: PbxConfig) -> SyncEngine | None:
        source = build_source(pbx, self._executor)
        if source is None:
            return None
        return SyncEngine(self.store, source, pbx.effective_source_id, self._config.sync,
                          pbx.read_timeout, executor=self._executor)
