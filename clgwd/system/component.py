"""Component ``system``: reboot, factory reset, updates, log collection, remote config.

One implementation behind the three front doors (cloud JSON-RPC, the onboarding page,
the CLI) of ``system.reboot``, ``system.factory_reset``, ``update.schedule[.get]``,
``update.apply``, ``logs.collect``, ``config.get``, ``config.set`` and the gateway
information, ``site.get`` / ``site.set``. Actions that end
the process or the machine answer first and act after ``system.action_delay``, so the
HTTP answer and the outbox flush can go out; their history event is committed (with its
outbox record) before the answer. At most one of reboot, reset and update runs at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Self

from clgwd.commands import CommandContext, CommandRouter
from clgwd.component import ComponentState, ComponentStatus, StatusTracker
from clgwd.config import ClgwdConfig
from clgwd.errors import ClgwdError
from clgwd.logbuffer import LogBuffer, shared_buffer
from clgwd.settings import SavedSettings, check_file_change
from clgwd.store import Action, Event, Severity, Store
from clgwd.system import configedit, logs, reset
from clgwd.system import rollback as layout
from clgwd.system.errors import (
    ActionInProgress,
    InvalidParams,
    SystemUnavailable,
    UpdatesUnmanaged,
)
from clgwd.system.runner import CommandResult, run_command
from clgwd.system.schedule import UpdateSchedule, next_window, parse_schedule
from clgwd.system.site import Site
from clgwd.system.updates import (
    LAST_CHECK_SETTING,
    LAST_OS_SETTING,
    LAST_UPDATE_SETTING,
    PAUSED_SETTING,
    UPDATE_FAILED,
    CloudReleases,
    ReleaseUpdater,
)
from clgwd.tasks import TaskScope, wait_at_most

_LOGGER = logging.getLogger(__name__)

SCHEDULE_SETTING: Final = "system.update_schedule"
REBOOT_FAILED: Final = "system.reboot_failed"
SCHEDULER_MAX_SLEEP: Final = 60.0
"""The scheduler re-checks the clock at least this often (suspend, clock steps)."""
CONFIRM_WORD: Final = "revert"


@dataclass(frozen=True)
class DaemonHooks:
    """What the component needs from the daemon (it may not import it)."""

    config: Callable[[], ClgwdConfig]
    config_path: Path | None
    reload: Callable[[], Awaitable[dict[str, Any]]]
    restart: Callable[[str], None]
    """Stop the process with the exit code systemd restarts on."""
    cloud: CloudReleases | None = None
    """The link, for signed release updates (``release.latest``, downloads)."""
    statuses: Callable[[], Mapping[str, ComponentStatus]] = field(default=dict)
    """Every component's status: a new release is healthy when all run."""


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SystemComponent:
    """Reboot, factory reset, updates, logs and remote config (issue 5, protocol §4.5)."""

    name = "system"

    def __init__(self, store: Store, commands: CommandRouter, hooks: DaemonHooks, *,
                 clock: Callable[[], dt.datetime] = _utcnow,
                 log_buffer: LogBuffer | None = None) -> None:
        self.tracker = StatusTracker(self.name)
        self.store = store
        self.hooks = hooks
        self.clock = clock
        self.log_ring = log_buffer or shared_buffer()
        self.scope = TaskScope(self.name)
        self._pending: str | None = None
        """"reboot", "factory reset" or "update" while one is under way."""
        self._schedule: UpdateSchedule | None = None
        self._wake = asyncio.Event()
        self._config_lock = asyncio.Lock()
        self.site = Site(store)
        self.updater = ReleaseUpdater(store, config=hooks.config, cloud=hooks.cloud,
                                      statuses=hooks.statuses, restart=hooks.restart,
                                      config_path=hooks.config_path)
        self._managed = False
        """The gateway runs from a release root: signed release updates."""
        for method, handler, mutating in (
                ("system.reboot", self._cmd_reboot, True),
                ("system.factory_reset", self._cmd_factory_reset, True),
                ("update.schedule.get", self._cmd_schedule_get, False),
                ("update.schedule", self._cmd_schedule_set, True),
                ("update.apply", self._cmd_update_apply, True),
                ("update.status", self._cmd_update_status, False),
                ("update.check", self._cmd_update_check, True),
                ("update.pause", self._cmd_update_pause, True),
                ("update.resume", self._cmd_update_resume, True),
                ("logs.collect", self._cmd_logs, False),
                ("config.get", self._cmd_config_get, False),
                ("config.set", self._cmd_config_set, True),
                ("site.get", self._cmd_site_get, False),
                ("site.set", self._cmd_site_set, True)):
            commands.register(method, handler, mutating=mutating)

    @property
    def config(self) -> ClgwdConfig:
        return self.hooks.config()

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self.tracker.set(ComponentState.STARTING)
        self.log_ring.attach()
        await self.scope.__aenter__()
        try:
            await self._record_finished_reset()
            self._schedule = await self._load_schedule()
            self._managed = await asyncio.to_thread(self.updater.managed)
            await self.updater.startup()
            if self.updater.trial is not None:
                self.scope.create_task(self.updater.watch_trial(),
                                       name="clgwd[system].update-trial")
        except BaseException:
            await self.scope.__aexit__(None, None, None)
            self.log_ring.detach()
            raise
        self._update_status()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.tracker.set(ComponentState.STOPPING)
        try:
            await self.scope.__aexit__(*exc_info)
        finally:
            self.log_ring.detach()
            self.tracker.set(ComponentState.STOPPED)

    async def _load_schedule(self) -> UpdateSchedule | None:
        """The stored schedule; one that no longer validates (a time zone gone from
        tzdata) is dropped with a warning instead of stopping the daemon."""
        stored = await self.store.settings.get(SCHEDULE_SETTING)
        if not stored:
            return None
        try:
            return await asyncio.to_thread(parse_schedule, stored)
        except InvalidParams as err:
            _LOGGER.warning("Stored update schedule ignored: %s", err)
            return None

    async def run(self) -> None:
        """The update scheduler: sleep until the next window, then run ``update.apply``."""
        while True:
            schedule = self._schedule
            window = next_window(schedule, self.clock()) if schedule else None
            wait = SCHEDULER_MAX_SLEEP
            if window is not None:
                wait = min(wait, max(0.0, (window - self.clock()).total_seconds()))
            await wait_at_most(self._wake.wait(), wait)
            self._wake.clear()
            if window is not None and schedule is self._schedule \
                    and self.clock() >= window:
                await self._scheduled_update(window)

    async def apply_config(self, config: ClgwdConfig) -> None:
        """Commands and timeouts are read from the running config at each use."""
        self._managed = await asyncio.to_thread(self.updater.managed)
        self._update_status()

    def wake(self) -> None:
        """Re-check the schedule now (a new schedule, or a test moved the clock)."""
        self._wake.set()

    # -- reboot and factory reset -------------------------------------------------------

    async def _cmd_reboot(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        _no_params(params, ())
        self._claim("reboot")
        try:
            await self._record(ctx.actor, Action.OTHER, "reboot requested")
        except BaseException:
            self._release()
            raise
        delay = self.config.system.action_delay
        self.scope.create_task(self._reboot_later(ctx.actor, delay),
                               name="clgwd[system].reboot")
        _LOGGER.warning("Reboot requested by %s; rebooting in %.0f s", ctx.actor, delay)
        return {"state": "rebooting", "reboot_in_s": delay}

    async def _reboot_later(self, actor: str, delay: float) -> None:
        try:
            await asyncio.sleep(delay)
            await self._reboot(actor)
        finally:
            self._release()

    async def _reboot(self, actor: str) -> None:
        cfg = self.config.system
        if cfg.reboot_restarts_daemon:
            await self._record(actor, Action.OTHER, "reboot: restarting the daemon only "
                               "(system.reboot_restarts_daemon)")
            self.hooks.restart("reboot (system.reboot_restarts_daemon: the daemon only)")
            return
        result = await run_command(cfg.reboot_command, cfg.reboot_timeout)
        if result.ok:
            _LOGGER.info("Reboot command succeeded; waiting for the system to stop clgwd")
            await self._record(actor, Action.OTHER, "reboot command succeeded",
                               extra={"result": result.as_json()})
            await self.store.alerts.clear(REBOOT_FAILED)
            await asyncio.sleep(cfg.reboot_timeout)
            _LOGGER.warning("Still running %.0f s after a successful reboot command; "
                            "reboot may be requested again", cfg.reboot_timeout)
        else:
            _LOGGER.error("Reboot failed: %s", result.summary())
            await self._record(actor, Action.OTHER, "reboot failed",
                               extra={"result": result.as_json()})
            await self.store.alerts.raise_alert(REBOOT_FAILED, Severity.CRITICAL,
                                                f"Reboot failed: {result.summary()}")

    async def _cmd_factory_reset(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        _no_params(params, ("confirm",))
        if params.get("confirm") != CONFIRM_WORD:
            raise InvalidParams(f"confirm: must be {CONFIRM_WORD!r} to reset the "
                                      "gateway to factory defaults")
        self._claim("factory reset")
        try:
            await asyncio.to_thread(reset.write_marker, self.config.state.dir, ctx.actor)
        except reset.UnsafeStateDir as err:
            self._release()
            raise SystemUnavailable(str(err)) from None
        except OSError as err:
            self._release()
            raise SystemUnavailable(f"cannot write the reset marker: {err.strerror}") from err
        delay = self.config.system.action_delay
        self.scope.create_task(self._restart_later(delay), name="clgwd[system].reset")
        try:  # the marker commits the reset; the event only tells the cloud
            await self._record(ctx.actor, Action.DELETE, "factory reset requested")
        except ClgwdError as err:
            _LOGGER.warning("Factory reset event not recorded (%s); resetting anyway", err)
        _LOGGER.warning("Factory reset requested by %s; restarting in %.0f s to wipe the "
                        "state", ctx.actor, delay)
        return {"state": "resetting", "restart_in_s": delay}

    async def _restart_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self.hooks.restart("factory reset")

    async def _record_finished_reset(self) -> None:
        note = await asyncio.to_thread(reset.take_done_note, self.config.state.dir)
        if note is not None:
            await self._record(str(note.get("actor", "unknown")), Action.DELETE,
                               "factory reset completed", extra=note)

    # -- updates ------------------------------------------------------------------------

    async def _cmd_schedule_get(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        return await self._schedule_view()

    async def _cmd_schedule_set(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        schedule = None
        if params:
            if not self._updates_managed():
                raise UpdatesUnmanaged(_UNMANAGED)
            schedule = await asyncio.to_thread(parse_schedule, params)
        async with self.store.db.transaction() as tx:
            await self.store.settings.set_in(tx, SCHEDULE_SETTING,
                                              schedule.as_json() if schedule else None)
            await self.store.history.record(tx, Event(
                actor=ctx.actor, action=Action.EDIT, asset="Update schedule",
                subject=_describe(schedule), properties_changed=("schedule",),
                core=schedule.as_json() if schedule else {}))
        self._schedule = schedule
        self.wake()
        self._update_status()
        return await self._schedule_view()

    async def _schedule_view(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self._schedule is not None:
            window = next_window(self._schedule, self.clock())
            out = self._schedule.as_json()
            out["next_window"] = {"at": window.timestamp(),
                                  "utc": window.isoformat(timespec="minutes"),
                                  "local": window.astimezone(self._schedule.zone)
                                  .isoformat(timespec="minutes")}
        last = await self.store.settings.get(LAST_UPDATE_SETTING)
        if last is not None:
            out["last_update"] = last
        out["update_running"] = self._pending == "update"
        out["managed"] = self._updates_managed()  # else the page shows the schedule read-only
        return out

    async def _cmd_update_apply(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        _no_params(params, ())
        return await self._start_update(ctx.actor)

    async def _scheduled_update(self, window: dt.datetime) -> None:
        if await self.store.settings.get(PAUSED_SETTING):
            await self._record("system:update-schedule", Action.OTHER,
                               "update window skipped: automatic updates are paused",
                               asset="Gateway software")
            return
        try:
            await self._start_update("system:update-schedule")
        except ClgwdError as err:
            _LOGGER.warning("Update window %s skipped: %s", window.isoformat(), err)

    async def _start_update(self, actor: str) -> dict[str, Any]:
        command = self.config.system.update_command
        if command is None and self._managed:
            if self.updater.trial is not None:
                raise ActionInProgress(f"cannot start an update: release "
                                       f"{self.updater.running} is still on trial")
            self._claim("update")
            self.scope.create_task(self._run_release_update(actor),
                                   name="clgwd[system].update")
            return {"state": "started", "started_at": time.time()}
        if command is None:
            raise UpdatesUnmanaged(_UNMANAGED)
        self._claim("update")
        started = time.time()
        self.scope.create_task(self._run_update(actor, command), name="clgwd[system].update")
        _LOGGER.info("Update started by %s: %s", actor, command)
        return {"state": "started", "started_at": started}

    async def _run_update(self, actor: str, command: list[str]) -> None:
        try:
            self._update_status()
            result = await run_command(command, self.config.system.update_timeout)
            await self._finish_update(actor, result)
        finally:
            self._release()
            self._update_status()

    async def _run_release_update(self, actor: str) -> None:
        try:
            await self.updater.update(actor)
        finally:
            self._release()

    def _updates_managed(self) -> bool:
        return self.config.system.update_command is not None or self._managed

    async def _cmd_update_status(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        _no_params(params, ())
        return await self.update_status()

    async def update_status(self) -> dict[str, Any]:
        """The page's and ``clgwd update status``'s view (docs/updates.md)."""
        view = await self._schedule_view()
        settings = self.store.settings
        return {
            "current_version": self.updater.running,
            "managed": self._updates_managed(),
            "mode": ("command" if self.config.system.update_command is not None
                     else "releases" if self._managed else "unmanaged"),
            "last_update": await settings.get(LAST_UPDATE_SETTING),
            "last_check": await settings.get(LAST_CHECK_SETTING),
            "last_os_update": await settings.get(LAST_OS_SETTING),
            "next_check": view.get("next_window"),
            "paused": bool(await settings.get(PAUSED_SETTING)),
            "schedule": {k: view[k] for k in ("frequency", "weekdays", "time", "timezone")
                         if k in view} or None,
            "update_running": self._pending == "update",
            "phase": self.updater.phase,
            "trial": self.updater.trial,
            "releases": (await asyncio.to_thread(layout.installed, self.updater.root)
                         if self._managed else []),
        }

    async def _cmd_update_check(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        _no_params(params, ())
        if not self._managed:
            raise UpdatesUnmanaged(_UNMANAGED)
        offer = await self.updater.check(ctx.actor)
        return {"available": offer is not None,
                "release": offer.as_json() if offer else None,
                "last_check": await self.store.settings.get(LAST_CHECK_SETTING)}

    async def _cmd_update_pause(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        return await self._set_paused(params, ctx, paused=True)

    async def _cmd_update_resume(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        return await self._set_paused(params, ctx, paused=False)

    async def _set_paused(self, params: Mapping[str, Any], ctx: CommandContext, *,
                          paused: bool) -> Any:
        _no_params(params, ())
        async with self.store.db.transaction() as tx:
            await self.store.settings.set_in(tx, PAUSED_SETTING, paused)
            await self.store.history.record(tx, Event(
                actor=ctx.actor, action=Action.EDIT, asset="Update schedule",
                subject="automatic updates paused" if paused else "automatic updates resumed",
                properties_changed=("paused",)))
        self.wake()
        return await self.update_status()

    async def _finish_update(self, actor: str, result: CommandResult) -> None:
        record = {**result.as_json(), "actor": actor, "finished_at": time.time()}
        async with self.store.db.transaction() as tx:
            await self.store.settings.set_in(tx, LAST_UPDATE_SETTING, record)
            await self.store.history.record(tx, Event(
                actor=actor, action=Action.OTHER, asset="Gateway software",
                subject=f"update {'succeeded' if result.ok else 'failed'}",
                core={"exit_code": result.exit_code, "duration_s": record["duration_s"]},
                extra={"result": result.as_json()}))
        if result.ok:
            _LOGGER.info("Update %s", result.summary())
            await self.store.alerts.clear(UPDATE_FAILED)
        else:
            _LOGGER.error("Update failed: %s", result.summary())
            await self.store.alerts.raise_alert(UPDATE_FAILED, Severity.WARNING,
                                                f"Update failed: {result.summary()}")

    # -- logs and config ----------------------------------------------------------------

    async def _cmd_logs(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        hours = logs.since_hours(params)
        lines = await logs.read_journal(hours)
        source = "journal"
        if lines is None:
            source, lines = "memory", self.log_ring.since(time.time() - hours * 3600)
        kept, truncated = logs.bounded(lines, self.config.system.logs_max_bytes)
        return {"source": source, "since_hours": hours, "lines": kept,
                "truncated": truncated}

    async def _cmd_site_get(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        _no_params(params, ())
        site = await self.site.get()
        return {"configured": site is not None, "site": site}

    async def _cmd_site_set(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        return await self.site.set(params, ctx.actor)

    async def _cmd_config_get(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        """The effective config (the file's with what the page and the cloud saved), each
        key's value and source (``settings``), and why a saved value is not in force."""
        _no_params(params, ("keys",))
        keys = params.get("keys")
        if keys is not None and (not isinstance(keys, list)
                                 or not all(isinstance(k, str) and k for k in keys)):
            raise InvalidParams("keys: must be a list of config keys such as "
                                "[\"pbx.host\", \"sync\"]")
        effective = (await SavedSettings.load(self.store)).resolve(self.config)
        report = effective.report(keys)
        if keys and not report:
            raise InvalidParams(f"keys: no config key is, or starts with, {', '.join(keys)}")
        return {"config": configedit.public_view(effective.config), "settings": report,
                "notes": list(effective.notes),
                "remote_forbidden": list(configedit.REMOTE_FORBIDDEN)}

    async def _cmd_config_set(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        _no_params(params, ("patch",))
        patch = params.get("patch")
        if not isinstance(patch, Mapping) or not patch:
            raise InvalidParams("patch: must be a non-empty JSON merge patch object "
                                      "such as {\"sync\": {\"interval_minutes\": 30}}")
        path = self.hooks.config_path
        if path is None:
            raise SystemUnavailable("the daemon was started without a config file")
        async with self._config_lock:
            return await self._set_config_locked(path, patch, ctx.actor)

    async def _set_config_locked(self, path: Path, patch: Mapping[str, Any],
                                 actor: str) -> dict[str, Any]:
        old = self.config
        document = await asyncio.to_thread(configedit.read_document, path)
        merged, new = configedit.check_patch(old, document, patch)
        saved = await SavedSettings.load(self.store)
        changed_keys = check_file_change(saved.resolve(old), new)
        changed = configedit.changed_paths(old, new)
        if not changed:
            return {"applied": True, "changed": []}
        await asyncio.to_thread(configedit.write_atomically, path, merged)
        # Marked before the reload, so the components see who wrote what when they
        # apply the new file; put back as they were if it does not apply.
        async with self.store.db.transaction() as tx:
            await saved.record_file_write(tx, self.store, changed_keys, actor)
        outcome = await self.hooks.reload()
        if not outcome.get("applied"):
            await asyncio.to_thread(configedit.restore_backup, path)
            async with self.store.db.transaction() as tx:
                await saved.write_marks(tx, self.store)
            _LOGGER.error("Remote config change by %s failed to apply; file restored",
                          actor)
            raise SystemUnavailable("the new config did not apply (" +
                                    "; ".join(outcome.get("errors", [])) +
                                    "); the previous file was restored")
        _LOGGER.info("Config changed remotely by %s: %s", actor, ", ".join(changed))
        await self._record(actor, Action.EDIT, "configuration changed remotely",
                           properties=tuple(changed), asset="Gateway configuration")
        return {"applied": True, "changed": changed}

    # -- helpers ------------------------------------------------------------------------

    def _claim(self, what: str) -> None:
        """One of reboot / factory reset / update at a time."""
        if self._pending is not None:
            raise ActionInProgress(f"cannot start a {what}: a {self._pending} is already "
                                   "under way")
        self._pending = what
        self._update_status()

    def _release(self) -> None:
        self._pending = None
        self._update_status()

    async def _record(self, actor: str, action: Action, subject: str, *,
                      extra: dict[str, Any] | None = None, properties: tuple[str, ...] = (),
                      asset: str = "Gateway") -> None:
        async with self.store.db.transaction() as tx:
            await self.store.history.record(tx, Event(
                actor=actor, action=action, asset=asset, subject=subject,
                properties_changed=properties, extra=extra or {}))

    def _update_status(self) -> None:
        if self.tracker.current.state in {ComponentState.STOPPING, ComponentState.STOPPED}:
            return  # a task released at teardown does not bring the status back
        message = f"{self._pending} under way" if self._pending else "idle"
        self.tracker.set(ComponentState.RUNNING, message,
                         update_schedule=_describe(self._schedule),
                         updates_managed=self._updates_managed())


_UNMANAGED: Final = ("updates are not managed on this gateway: it does not run from a "
                     "release root (system.release_root/current) and system.update_command "
                     "is not set in the config file")


def _describe(schedule: UpdateSchedule | None) -> str:
    if schedule is None:
        return "off"
    days = "daily" if schedule.frequency == "daily" else ",".join(schedule.weekdays)
    return f"{days} at {schedule.time:%H:%M} {schedule.zone.key}"


def _no_params(params: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(str(k) for k in params if k not in allowed)
    if unknown:
        expected = ", ".join(allowed) if allowed else "no parameters"
        raise InvalidParams(f"unknown parameter(s) {', '.join(unknown)}; expected "
                                  f"{expected}")
