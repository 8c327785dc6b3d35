"""Component ``sync``: the schedule, "Sync now", preview, and the sync status.

It also owns the commands of the onboarding page's PBX, Connect and Sync steps
(``pbx.get/set/test``, ``sync.schedule.get/set``, ``inventory.report``; shapes in
docs/api.md). Settings saved there live in the state DB and override the file's;
``clgwd.settings`` owns that rule, and this component asks it for every effective
value (docs/settings.md).

One lock guarantees that two syncs never run at once (scheduled, CLI, web and cloud
all come through here); a second request while one runs is refused with
``sync_busy`` rather than queued, so an impatient operator cannot stack runs.

The schedule is an explicit state machine (``SyncPhase``): ``not_configured`` (no PBX;
idle until a config reload), ``waiting`` (next run at ``next_run_at``), ``syncing``,
and ``blocked`` (the PBX refused the credentials: retrying would only lock the account,
so it waits for a config change or "Sync now"). Failed reads retry sooner than the
interval, with the one retry policy (``clgwd.retry``: capped exponential, full jitter;
the cap is the interval).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
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
from clgwd.retry import Backoff
from clgwd.settings import Effective, SavedSettings, effective_pbx
from clgwd.store import Action, Event, Store
from clgwd.sync import missing, page
from clgwd.sync.engine import ALERT_IRREGULAR, READ_ALERTS, SyncEngine, SyncOutcome
from clgwd.sync.missing import ALERT_SAFETY, DeleteConfirmation
from clgwd.sync.progress import SyncProgress
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
FORGETTABLE: Final = ("pbx", "sync.interval_minutes")
"""What ``settings.forget`` drops (the other ``SAVED_KEYS`` belong to other parts)."""
ELSEWHERE: Final = "cloud.url"
"""Also accepted by ``settings.forget``: the link forgets it (``cloud.address.forget``)."""


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
                 metrics: Metrics | None = None, retry: Backoff | None = None) -> None:
        self.store = store
        self._commands = commands
        self._retry = retry or Backoff(RETRY_BASE, RETRY_BASE)
        """Waits after failed reads; its cap follows the interval (``_next_delay``)."""
        self.tracker = StatusTracker(self.name)
        self.phase = SyncPhase.STOPPED
        self.last: dict[str, Any] | None = None
        self.next_run_at: float | None = None
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._failures = 0
        self._config = config
        self._saved = SavedSettings()
        """What the page and the cloud saved (PBX, interval); loaded on entry."""
        self._saved_lock = asyncio.Lock()
        """Held by every read-modify-write of ``_saved``: the control socket is open
        before this component enters, so a ``pbx.set`` can race the initial load."""
        self._effective = self._saved.resolve(config)
        self._logged_notes: set[str] = set()
        """Notes already logged, so a note is logged once, when it appears."""
        self._pbx = config.pbx
        self.connected: bool | None = None
        """The last connection test or sync reached the PBX (None: not tried yet)."""
        self._inventory: dict[str, Any] | None = None
        self._run_soon = False
        """Run the schedule's next sync at once (after "Keep these users")."""
        self.progress: SyncProgress | None = None
        """The run under way (``sync.status``), None while idle."""
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
            commands.register("settings.forget", self._cmd_forget, mutating=True)
            commands.register("sync.status", self._cmd_status, mutating=False)
            commands.register("sync.missing.get", self._cmd_missing_get, mutating=False)
            commands.register("sync.missing.keep", self._cmd_missing_keep, mutating=True)
            commands.register("sync.missing.delete", self._cmd_missing_delete,
                              mutating=True)
            commands.register("sync.kept.get", self._cmd_kept_get, mutating=False)

    # -- component lifecycle ---------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self.tracker.set(ComponentState.STARTING)
        await self._load_page_settings()
        await self._load_last()
        await self._clear_alerts_of_a_replaced_source()
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
        async with self._saved_lock:
            await self._apply_config_locked(config)

    async def _apply_config_locked(self, config: ClgwdConfig) -> None:
        # Who wrote which key into the file (the cloud's config.set) may have changed.
        self._saved = await SavedSettings.load(self.store)
        if (config.pbx, config.sync) == (self._config.pbx, self._config.sync):
            self._config = config
            self._resolve()
            return
        self._config = config
        await self._use_pbx(self._resolve().config.pbx)
        _LOGGER.info("Sync settings changed; source: %s",
                     self._engine.source.describe() if self._engine else "none")

    def _resolve(self) -> Effective:
        """The effective settings (``clgwd.settings``): the file's with what was saved; a
        saved PBX that no longer fits a reloaded file is reported, and the file's used."""
        self._effective = self._saved.resolve(self._config)
        for note in sorted(set(self._effective.notes) - self._logged_notes):
            _LOGGER.warning("Sync settings: %s", note)
        self._logged_notes = set(self._effective.notes)
        return self._effective

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
            await self._clear_source_alerts()
        if not self._lock.locked():
            self._set_phase(SyncPhase.NOT_CONFIGURED if self._engine is None
                            else SyncPhase.WAITING)
        self._wake.set()

    async def _clear_alerts_of_a_replaced_source(self) -> None:
        """The PBX was changed in the file while the daemon was stopped: the alerts of
        the last run, which read another source, say nothing about this one."""
        row = await self.store.db.fetchone(
            "SELECT source_id FROM sync_runs ORDER BY started_at DESC LIMIT 1")
        current = self._engine.source_id if self._engine else None
        if row is not None and row[0] != current:
            await self._clear_source_alerts()

    async def _clear_source_alerts(self) -> None:
        """Alerts raised about the previous PBX say nothing about the new one."""
        active = {a.code for a in await self.store.alerts.active()}
        for code in (*READ_ALERTS, ALERT_SAFETY, ALERT_IRREGULAR):
            if code in active:
                await self.store.alerts.clear(code)

    async def _load_page_settings(self) -> None:
        async with self._saved_lock:
            await self._load_page_settings_locked()

    async def _load_page_settings_locked(self) -> None:
        self._saved = await SavedSettings.load(self.store)
        pbx = self._resolve().config.pbx
        if pbx != self._pbx:
            self._pbx = pbx
            self._engine = self._build_engine(self._pbx)

    # -- operations (CLI, web and cloud come here) -----------------------------------------

    async def sync(self, *, actor: str, trigger: str = "now") -> SyncOutcome:
        """Run one sync now; refuse when one is already running."""
        return await self._locked_run(actor=actor, trigger=trigger, preview=False)

    async def preview(self, *, actor: str) -> SyncOutcome:
        """Dry run: read and diff, change nothing (the Connect step report)."""
        return await self._locked_run(actor=actor, trigger="preview", preview=True)

    async def delete_missing(self, *, actor: str, confirm: DeleteConfirmation
                             ) -> SyncOutcome:
        """"Delete them once": a run that deletes exactly the confirmed missing users
        (refused as stale when the stored or the freshly read set is another one)."""
        engine = self._require_engine()
        missing.check(await missing.pending(self.store, engine.source_id), confirm.set_id)
        return await self._locked_run(actor=actor, trigger="confirmed_delete",
                                      preview=False, confirm=confirm)

    async def keep_missing(self, *, actor: str, set_id: str | None) -> dict[str, Any]:
        """"Keep these users": they stop counting; nothing is deleted in the cloud."""
        engine = self._require_engine()
        if self._lock.locked():
            raise SyncBusy("a sync is running; decide when it has finished")
        async with self._lock:
            held = missing.check(await missing.pending(self.store, engine.source_id),
                                 set_id)
            kept = await missing.keep(self.store, held, actor)
        _LOGGER.warning("Sync %s: %d missing users kept by %s (not deleted in the cloud)",
                        engine.source_id, kept, actor)
        self._inventory = None
        self._failures = 0
        self._run_soon = True
        self._wake.set()  # the next read, now the baseline, runs at once
        return {"kept": kept, "set_id": held.set_id}

    def _require_engine(self) -> SyncEngine:
        if self._engine is None:
            raise PbxNotConfigured("no PBX configured: add it on the PBX page "
                                   "(pbx.set) or set pbx.type in the config")
        return self._engine

    async def _locked_run(self, *, actor: str, trigger: str, preview: bool,
                          confirm: DeleteConfirmation | None = None) -> SyncOutcome:
        engine = self._require_engine()
        if self._lock.locked():
            raise SyncBusy("a sync is already running; try again when it has finished")
        async with self._lock:
            previous = self.phase
            self.progress = SyncProgress(uuid.uuid4().hex, trigger, actor)
            self._set_phase(SyncPhase.SYNCING)
            try:
                out = await engine.run(actor=actor, trigger=trigger, preview=preview,
                                       confirm=confirm, progress=self.progress)
            finally:
                self.progress = None
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
        return self.last is None and self._saved.overlay is not None

    @property
    def interval_minutes(self) -> int:
        """The effective interval (saved on the page or by the cloud, else the file's)."""
        return self._effective.config.sync.interval_minutes

    def _next_delay(self) -> float | None:
        """Seconds until the next scheduled run; None means wait for a wake-up."""
        if self._engine is None or self.phase == SyncPhase.BLOCKED or self.awaiting_sync_now:
            return None
        interval = self.interval_minutes * 60.0
        if self._run_soon:
            self._run_soon = False
            return 0.0
        if self._failures:
            self._retry.cap = max(interval, self._retry.base)
            return self._retry.delay(self._failures - 1, floor=RETRY_FLOOR)
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
        return self._pbx_view()

    def _pbx_view(self) -> dict[str, Any]:
        """``pbx.get``: the effective PBX settings, and each key's value and source."""
        return {**page.pbx_view(self._pbx, connected=bool(self.connected),
                                from_page=self._saved.overlay is not None),
                "settings": self._effective.report(page.page_keys(self._pbx.type))}

    async def _cmd_pbx_set(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        async with self._saved_lock:
            return await self._pbx_set_locked(params, ctx)

    async def _pbx_set_locked(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        """Validate, persist (settings, password and history in one transaction), switch."""
        overlay = page.overlay_from_params(params)
        raw = params.get("password")
        if raw is not None and not isinstance(raw, str):
            raise page.InvalidPbxSettings("password: must be text, or null to keep it")
        new_password = Secret(raw) if raw is not None else None
        pbx = effective_pbx(self._config.pbx, overlay, new_password or self._saved.password)
        before = page.pbx_view(self._pbx, connected=False, from_page=False)
        after = page.pbx_view(pbx, connected=False, from_page=False)
        changed = sorted(k for k in ("type", "name", "address", "port", "username", "options")
                         if before[k] != after[k]) + (["password"] if raw is not None else [])
        async with self.store.db.transaction() as tx:
            saved = await self._saved.save_pbx(tx, self.store, overlay, new_password,
                                               ctx.actor)
            if changed:
                await self.store.history.record(tx, Event(
                    actor=ctx.actor, action=Action.EDIT if self._pbx.type != "none"
                    else Action.CREATE, asset="PBX", subject=pbx.name or pbx.type,
                    properties_changed=changed,
                    core={k: after[k] for k in changed if k != "password"}))
        self._saved = saved
        _LOGGER.info("PBX settings saved by %s (changed: %s)", ctx.actor, changed or "none")
        await self._use_pbx(self._resolve().config.pbx)
        return self._pbx_view()

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
                "safety_abort": out.safety_abort,
                "email_policy": self._effective.entry("sync.email_problems"),
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
                "running": self.progress is not None,
                "progress": self.progress.as_json() if self.progress else None,
                "safety_abort": await self._held_back(),
                "saved_from_page": self._saved.interval is not None,
                "awaiting_sync_now": self.awaiting_sync_now,
                "settings": self._effective.report(["sync.interval_minutes"])}

    async def _held_back(self) -> dict[str, Any] | None:
        if self._engine is None:
            return None
        held = await missing.pending(self.store, self._engine.source_id)
        return held.as_json() if held else None

    async def _cmd_status(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        """``sync.status``: cheap enough to poll every second while a run is going."""
        last = self.last
        return {"phase": self.phase.value, "running": self.progress is not None,
                "progress": self.progress.as_json() if self.progress else None,
                "queued": await self.store.outbox.depth(),
                "last_sync": None if last is None else {
                    "run_id": last["run_id"], "at": last["started_at"],
                    "result": last["result"], "ok": last["result"] == "ok",
                    "duration": last["duration"], "counts": last.get("counts", {})},
                "next_sync_at": self.next_run_at,
                "safety_abort": await self._held_back()}

    async def _cmd_missing_get(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        """``sync.missing.get {offset?, limit?}``: the users a safety abort held back."""
        offset, limit = _int_param(params, "offset", 0, 0, 10**9), \
            _int_param(params, "limit", 50, 1, missing.PAGE_MAX)
        if set(params) - {"offset", "limit"}:
            raise page.InvalidPbxSettings("sync.missing.get takes offset and limit only")
        engine = self._require_engine()
        held = await missing.pending(self.store, engine.source_id)
        users = await missing.page(self.store, engine.source_id, offset, limit) \
            if held else []
        return {"pending": held is not None, **(held.as_json() if held else {}),
                "offset": offset, "limit": limit, "users": users}

    async def _cmd_kept_get(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        """``sync.kept.get {offset?, limit?}``: users kept in the cloud ("Keep these
        users") that are no longer on the PBX, over every source."""
        offset, limit = _int_param(params, "offset", 0, 0, 10**9), \
            _int_param(params, "limit", 50, 1, missing.PAGE_MAX)
        if set(params) - {"offset", "limit"}:
            raise page.InvalidPbxSettings("sync.kept.get takes offset and limit only")
        return {"count": await missing.kept_count(self.store), "offset": offset,
                "limit": limit, "users": await missing.kept_page(self.store, offset, limit)}

    async def _cmd_missing_keep(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        """``sync.missing.keep {set_id?}``."""
        if set(params) - {"set_id"}:
            raise page.InvalidPbxSettings("sync.missing.keep takes set_id only")
        return await self.keep_missing(actor=ctx.actor, set_id=_set_id(params, False))

    async def _cmd_missing_delete(self, params: Mapping[str, Any],
                                  ctx: CommandContext) -> Any:
        """``sync.missing.delete {set_id, confirm}``: confirm is the number typed."""
        if set(params) - {"set_id", "confirm"}:
            raise page.InvalidPbxSettings("sync.missing.delete takes set_id and confirm")
        set_id = _set_id(params, True)
        assert set_id is not None
        count = _int_param(params, "confirm", None, 0, 10**9)
        out = await self.delete_missing(actor=ctx.actor,
                                        confirm=DeleteConfirmation(set_id, count))
        return out.as_json()

    async def _cmd_schedule_set(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        async with self._saved_lock:
            return await self._schedule_set_locked(params, ctx)

    async def _schedule_set_locked(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        minutes = page.check_interval(params)
        previous = self.interval_minutes
        async with self.store.db.transaction() as tx:
            saved = await self._saved.save_interval(tx, self.store, minutes, ctx.actor)
            if minutes != previous:
                await self.store.history.record(tx, Event(
                    actor=ctx.actor, action=Action.EDIT, asset="Sync schedule",
                    subject=f"every {minutes} minutes", properties_changed=["interval_minutes"],
                    core={"interval_minutes": minutes, "previous": previous}))
        self._saved = saved
        self._resolve()
        self._wake.set()  # re-arm: the loop computes the next run with the new interval
        return await self._cmd_schedule_get({}, ctx)

    async def _cmd_forget(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        async with self._saved_lock:
            return await self._forget_locked(params, ctx)

    async def _forget_locked(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        """``settings.forget``: drop what was saved for ``pbx`` and/or the interval, so
        the config file's values apply again (one history event)."""
        keys = params.get("keys")
        if set(params) - {"keys"} or not isinstance(keys, list) or not keys \
                or not all(isinstance(k, str) and k in (*FORGETTABLE, ELSEWHERE)
                           for k in keys):
            raise page.InvalidPbxSettings(f"keys: a list of saved settings to forget, of "
                                          f"{', '.join((*FORGETTABLE, ELSEWHERE))}")
        elsewhere: list[str] = []
        asked = [ELSEWHERE] if ELSEWHERE in keys else []
        if asked and self._commands is not None:
            # The link owns the saved cloud address; ask it through the router.
            answer = await self._commands.call("cloud.address.forget", {}, ctx)
            elsewhere = list(answer["forgotten"])
            self._saved = await SavedSettings.load(self.store)
        keys = [k for k in keys if k != ELSEWHERE]
        saved = self._saved
        held = {"pbx": saved.overlay is not None or saved.password is not None,
                "sync.interval_minutes": saved.interval is not None}
        forgotten = [k for k in dict.fromkeys(keys) if held[k]]
        if forgotten:
            async with self.store.db.transaction() as tx:
                for key in forgotten:
                    saved = await saved.forget(tx, self.store, key)
                await self.store.history.record(tx, Event(
                    actor=ctx.actor, action=Action.DELETE, asset="Saved settings",
                    subject=", ".join(forgotten), properties_changed=forgotten))
            self._saved = saved
            _LOGGER.info("Saved settings forgotten by %s: %s", ctx.actor, ", ".join(forgotten))
            await self._use_pbx(self._resolve().config.pbx)
        report = self._resolve().report([*keys, *asked])
        return {"forgotten": forgotten + elsewhere, "settings": report}

    async def _cmd_inventory(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        """Users and DIDs synced (queued to the cloud), and users kept in the cloud
        though no longer on the PBX, over every source; cached until the next sync or
        keep, since the overview asks on every refresh."""
        if self._inventory is None:
            row = await self.store.db.fetchone(
                "SELECT COUNT(*) FROM sync_snapshot WHERE deleted = 0")
            dids = await self.store.db.fetchone(
                "SELECT COUNT(DISTINCT d.value) FROM sync_snapshot AS s,"
                " json_each(s.user, '$.dids') AS d WHERE s.deleted = 0")
            self._inventory = {"users": int(row[0]) if row else 0,
                               "dids": int(dids[0]) if dids else 0,
                               "kept": await missing.kept_count(self.store)}
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


def _int_param(params: Mapping[str, Any], key: str, default: int | None, low: int,
               high: int) -> int:
    value = params.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise page.InvalidPbxSettings(f"{key}: must be a whole number {low}-{high}")
    return value


def _set_id(params: Mapping[str, Any], required: bool) -> str | None:
    value = params.get("set_id")
    if value is None and not required:
        return None
    if not isinstance(value, str) or not 1 <= len(value) <= 64:
        raise page.InvalidPbxSettings("set_id: the id of the list of missing users shown "
                                      "(sync.missing.get)")
    return value
