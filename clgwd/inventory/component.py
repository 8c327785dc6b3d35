"""Component ``inventory``: collects the System Inventory and submits it upstream.

The document (docs/monitoring.md) holds this host's platform facts, the applications
(clgwd, the PBX, the SIP trunks' peers) and the LAN platforms polled over SNMP. It is
queued as one ``inventory`` record through the outbox at start, then whenever it
changed other than in time and live measurements: the local part and the applications
are re-read every ``CHECK_INTERVAL`` seconds, the LAN platforms every
``inventory.interval`` (the schedule, hourly by default).

The schedule and the LAN platforms can also be saved from the Advanced page, the CLI or
the cloud (``inventory.settings.set``; ``clgwd.settings`` owns the rule): a saved change
applies at once (the platforms are polled again), without a restart.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Self

from clgwd import __version__
from clgwd.commands import CommandContext, CommandRouter
from clgwd.component import ComponentState, ComponentStatus, StatusTracker
from clgwd.config import ClgwdConfig
from clgwd.config.monitor import InventoryConfig, SnmpPlatform
from clgwd.config.pbx import PbxConfig
from clgwd.errors import ClgwdError
from clgwd.inventory.collect import collect_local, stable_view
from clgwd.settings import (
    InvalidSavedSettings,
    SavedSettings,
    forget_section,
    prepare,
    save_section,
)
from clgwd.settings.rule import public, raw_fields
from clgwd.store import Action, Event, Store
from clgwd.tasks import wait_at_most

_LOGGER = logging.getLogger(__name__)

CHECK_INTERVAL: Final = 60.0
"""Seconds between re-reads of the local facts and applications (cheap, no network)."""
SUBMITTED_SETTING: Final = "inventory.last_submitted"
SECTION: Final = "inventory"
RECORD_BUDGET: Final = 200_000
"""Characters of JSON above which the platforms' software lists are left out (one
outbox record holds at most 256 KiB)."""

StatusSource = Callable[[], Mapping[str, ComponentStatus]]


def _digest(document: dict[str, Any]) -> str:
    text = json.dumps(stable_view(document), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def applications(host: str, pbx: PbxConfig,
                 statuses: Mapping[str, ComponentStatus]) -> list[dict[str, Any]]:
    """clgwd, the configured PBX and the trunks' peers (Server header), as far as known."""
    apps: list[dict[str, Any]] = [{"name": "clgwd", "type": "cloudlink-gateway",
                                   "version": __version__, "platform": host}]
    if pbx.type != "none":
        sync = statuses.get("sync")
        source = sync.details.get("source") if sync is not None else None
        apps.append({"name": pbx.name or pbx.type, "type": pbx.type, "version": None,
                     "platform": pbx.host or None,
                     "source": source if isinstance(source, str) else None})
    for status in statuses.values():
        trunks = status.details.get("trunks")
        for trunk in trunks if isinstance(trunks, list) else []:
            if isinstance(trunk, Mapping) and trunk.get("server"):
                apps.append({"name": str(trunk.get("name", "")), "type": "sip-trunk-peer",
                             "version": str(trunk["server"]), "platform": None})
    return apps


async def poll(poller: Any, platform: SnmpPlatform, wait: float) -> dict[str, Any]:
    """One LAN platform's inventory entry; unreachable hosts are reported as such."""
    report = await poller.poll(platform.address, community=platform.community,
                               user=platform.user, wait=wait)
    descr = report.sys_descr.lower()
    family = "windows" if "windows" in descr else "linux" if "linux" in descr else ""
    return {
        "name": platform.name, "address": platform.address, "reachable": report.reachable,
        "error": report.error or None, "host": report.sys_name or None,
        "platform_type": "mitel" if report.mitel else ("snmp-host" if report.reachable
                                                         else None),
        "system_family": family or None, "description": report.sys_descr or None,
        "sys_object_id": report.sys_object_id or None,
        "uptime_seconds": report.uptime_seconds, "storage": report.storage,
        "software": report.software, "software_truncated": report.software_truncated,
        "admin_url": platform.admin_url or None,
    }


class InventoryComponent:
    """Collects, compares and submits; answers ``inventory.get``."""

    name = "inventory"

    def __init__(self, config: ClgwdConfig, store: Store, commands: CommandRouter,
                 statuses: StatusSource) -> None:
        self._file = config
        """The config file's settings; what was saved is applied over them."""
        self._effective = SavedSettings().resolve(config)
        self._settings_lock = asyncio.Lock()
        self._logged_notes: set[str] = set()
        self._config: InventoryConfig = config.inventory
        self._pbx = config.pbx
        self._store = store
        self._statuses = statuses
        self.tracker = StatusTracker(self.name)
        self.document: dict[str, Any] | None = None
        self.last_submitted: float | None = None
        self.next_submission: float | None = None
        self.collect_ms = 0.0
        self._digest: str | None = None
        self._platforms: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._poller: Any = None
        self._problem = ""
        commands.register("inventory.get", self._cmd_get, mutating=False)
        commands.register("inventory.settings.get", self._cmd_settings_get, mutating=False)
        commands.register("inventory.settings.set", self._cmd_settings_set, mutating=True)
        commands.register("inventory.settings.forget", self._cmd_settings_forget,
                          mutating=True)

    async def __aenter__(self) -> Self:
        self.tracker.set(ComponentState.STARTING)
        self.last_submitted = await self._store.settings.get(SUBMITTED_SETTING)
        await self._load_settings()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._poller is not None:
            self._poller.close()
            self._poller = None
        self.tracker.set(ComponentState.STOPPED)

    async def run(self) -> None:
        next_poll = 0.0
        first = True
        while True:
            if time.monotonic() >= next_poll:
                self._platforms = await self._poll_platforms()
                next_poll = time.monotonic() + self._config.interval
                self.next_submission = time.time() + self._config.interval
            await self._collect_and_submit(force=first)
            first = False
            self._wake.clear()
            await wait_at_most(self._wake.wait(),
                               min(CHECK_INTERVAL, max(0.0, next_poll - time.monotonic())))
            if self._wake.is_set():
                next_poll = 0.0  # a config change or refresh re-polls the platforms now

    async def apply_config(self, config: ClgwdConfig) -> None:
        """A new config file: what was saved on the page still applies over it."""
        async with self._settings_lock:
            self._file = config
            await self._load_settings()

    async def _load_settings(self) -> None:
        self._effective = (await SavedSettings.load(self._store)).resolve(self._file)
        notes = {note for note in self._effective.notes if "inventory" in note}
        for note in sorted(notes - self._logged_notes):  # once, when it appears
            _LOGGER.warning("Inventory settings: %s", note)
        self._logged_notes = notes
        self._use(self._effective.config)

    def _use(self, config: ClgwdConfig) -> None:
        if (config.inventory, config.pbx) != (self._config, self._pbx):
            self._config, self._pbx = config.inventory, config.pbx
            self._wake.set()

    # -- settings (the Advanced page, the CLI, the cloud) ----------------------------------

    async def _cmd_settings_get(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        """``inventory.settings.get``: the schedule and the LAN platforms in force (secrets
        as "set" or null), each key's source, and the submission times."""
        return self.settings_view()

    def settings_view(self) -> dict[str, Any]:
        return {**public(raw_fields(self._config)),
                "last_submitted": self.last_submitted, "next_submission": self.next_submission,
                "settings": self._effective.report(["inventory.interval",
                                                    "inventory.platforms"]),
                "notes": [n for n in self._effective.notes if "inventory" in n]}

    async def _cmd_settings_set(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        """``inventory.settings.set {"interval": ..., "platforms": [...]}``: validate,
        save and apply at once (the platforms are polled again)."""
        async with self._settings_lock:
            saved = await SavedSettings.load(self._store)
            done = prepare(self._file, SECTION, params, self._config,
                           saved.sections.get(SECTION))
            async with self._store.db.transaction() as tx:
                await save_section(tx, self._store, SECTION, done.values, ctx.actor)
                if done.changed:
                    await self._store.history.record(tx, Event(
                        actor=ctx.actor, action=Action.EDIT, asset="Inventory",
                        subject="schedule and LAN platforms", properties_changed=done.changed,
                        core=done.shown))
            _LOGGER.info("Inventory settings saved by %s (changed: %s)", ctx.actor,
                         ", ".join(done.changed) or "none")
            await self._load_settings()
        return self.settings_view()

    # -- collection ----------------------------------------------------------------------

    async def _poll_platforms(self) -> list[dict[str, Any]]:
        if not self._config.platforms:
            return []
        from clgwd.monitor.snmp import Poller  # noqa: PLC0415 - pysnmp loads on demand

        # One engine per round: kept between rounds, pysnmp's 10 Hz timer would run all
        # hour; making one costs about 0.5 s of CPU once an hour.
        self._poller = Poller()
        try:
            return list(await asyncio.gather(*(poll(self._poller, p, self._config.poll_timeout)
                                               for p in self._config.platforms)))
        finally:
            self._poller.close()
            self._poller = None

    async def collect(self) -> dict[str, Any]:
        start = time.perf_counter()
        local = await asyncio.to_thread(collect_local)
        self.collect_ms = (time.perf_counter() - start) * 1000
        return {**local,
                "applications": applications(local["host"]["name"], self._pbx,
                                             self._statuses()),
                "platforms": self._platforms, "collected_at": time.time()}

    async def _collect_and_submit(self, *, force: bool) -> None:
        try:
            document = await self.collect()
        except Exception as err:  # psutil or /proc trouble must not stop the daemon
            _LOGGER.warning("Inventory collection failed: %s (%s)", err, type(err).__name__)
            self._problem = f"collection failed: {err}"
            self._update_status()
            return
        digest = _digest(document)
        self._problem = ""
        if force or digest != self._digest:
            try:
                await self._submit(document)
            except ClgwdError as err:  # outbox full, record too large: retried next check
                _LOGGER.warning("Inventory not queued: %s", err.message)
                self._problem = f"not queued: {err.message}"
            else:
                self._digest = digest
        self.document = document
        self._update_status()

    async def _submit(self, document: dict[str, Any]) -> None:
        now = time.time()
        record = document
        if len(json.dumps(record, default=str)) > RECORD_BUDGET:
            # Software lists are the bulk (a Linux host lists every package): drop them.
            record = {**document, "platforms": [
                {**p, "software": [], "software_truncated": bool(p.get("software"))}
                for p in document.get("platforms", [])]}
        async with self._store.db.transaction() as tx:
            await self._store.outbox.enqueue(tx, "inventory", record, coalesce_key="inventory")
            await self._store.settings.set_in(tx, SUBMITTED_SETTING, now)
        _LOGGER.info("Inventory queued for the cloud (%s)",
                     "at start" if self._digest is None else "it changed")
        self.last_submitted = now

    async def _cmd_settings_forget(self, params: Mapping[str, Any], ctx: CommandContext
                                   ) -> Any:
        """``inventory.settings.forget {}``: drop the schedule and platforms saved from the
        page, so the config file's apply again (the platforms are polled again)."""
        if params:
            raise InvalidSavedSettings("inventory.settings.forget takes no parameters")
        async with self._settings_lock:
            saved = await SavedSettings.load(self._store)
            forgotten = [SECTION] if SECTION in saved.sections else []
            if forgotten:
                async with self._store.db.transaction() as tx:
                    await forget_section(tx, self._store, SECTION)
                    await self._store.history.record(tx, Event(
                        actor=ctx.actor, action=Action.DELETE, asset="Saved settings",
                        subject=SECTION, properties_changed=forgotten))
                _LOGGER.info("Saved settings forgotten by %s: %s", ctx.actor, SECTION)
                await self._load_settings()
        return {"forgotten": forgotten, **self.settings_view()}

    def _update_status(self) -> None:
        unreachable = [p["name"] for p in self._platforms if not p["reachable"]]
        details: dict[str, Any] = {"last_submitted": self.last_submitted,
                   "next_submission": self.next_submission,
                   "platforms": len(self._platforms), "unreachable": unreachable,
                   "collect_ms": round(self.collect_ms, 2)}
        if self._problem:
            self.tracker.set(ComponentState.DEGRADED, f"inventory {self._problem}", **details)
        elif unreachable:
            self.tracker.set(ComponentState.DEGRADED,
                             "platforms unreachable over SNMP: " + ", ".join(unreachable),
                             **details)
        else:
            self.tracker.set(ComponentState.RUNNING,
                             f"{len(self._platforms)} LAN platform(s); submitted "
                             f"{_clock(self.last_submitted)}", **details)

    async def _cmd_get(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        """``inventory.get``: the current document with the submission times."""
        document = self.document or await self.collect()
        return {**document, "last_submitted": self.last_submitted,
                "next_submission": self.next_submission}


def _clock(at: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(at)) if at else "never"
