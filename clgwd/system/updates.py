"""Signed release updates inside the daemon: check, download, install, switch, confirm.

``ReleaseUpdater`` is the system component's helper for updates when the gateway runs
from a release root (``system.release_root/current``) and no ``system.update_command``
is set. It asks the cloud over the link for the newest release (``release.latest``),
downloads and installs it (``releases``), writes the marker and switches ``current``,
then asks the daemon to restart (exit 75; systemd starts the new release). The new
daemon sees the marker naming its own version, waits for health (every component
running and, if enrolled, the link online) and confirms by removing the marker; if
health does not come before the deadline it rolls back itself, and if it cannot even
run, the standalone ``rollback`` program does it from systemd. Every check, install,
success and rollback is a history event (sent upstream through the outbox); failures
raise ``system.update_failed`` naming the reason.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import shutil
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from clgwd import __version__
from clgwd.component import ComponentState, ComponentStatus
from clgwd.config import ClgwdConfig
from clgwd.errors import ClgwdError
from clgwd.store import Action, Event, Severity, Store
from clgwd.system import releases
from clgwd.system import rollback as layout
from clgwd.system.bundle import ReleaseKeyError, load_public_key, runtime_tag
from clgwd.system.releases import Offer, UpdateFailed
from clgwd.system.runner import run_command

_LOGGER = logging.getLogger(__name__)

LAST_UPDATE_SETTING: Final = "system.update_last"
LAST_CHECK_SETTING: Final = "system.update_last_check"
LAST_OS_SETTING: Final = "system.update_last_os"
PAUSED_SETTING: Final = "system.update_paused"
UPDATE_FAILED: Final = "system.update_failed"
HEALTH_POLL: Final = 1.0
ASSET: Final = "Gateway software"
ONLINE_REQUIRED: Final = frozenset({"not_configured", "not_enrolled"})
"""Link states in which the gateway is not enrolled, so health does not need the link."""


class CloudReleases(Protocol):
    """What updates need from the cloud link (the daemon passes the link component)."""

    async def latest_release(self, params: dict[str, Any]) -> Any: ...

    async def cloud_tls(self) -> tuple[str, Any]: ...

    async def enrolled_release_key(self) -> str: ...


def is_healthy(statuses: Mapping[str, ComponentStatus]) -> tuple[bool, str]:
    """All components running and, if enrolled, the link online; else why not."""
    for name, status in statuses.items():
        if status.state != ComponentState.RUNNING:
            return False, f"{name} is {status.state.value}"
        if name == "link":
            link_state = status.details.get("link_state")
            if link_state != "online" and link_state not in ONLINE_REQUIRED:
                return False, f"the cloud link is {link_state}"
    return True, "healthy"


class ReleaseUpdater:
    """Signed-release updates for one daemon process."""

    def __init__(self, store: Store, *, config: Callable[[], ClgwdConfig],
                 cloud: CloudReleases | None,
                 statuses: Callable[[], Mapping[str, ComponentStatus]],
                 restart: Callable[[str], None], config_path: Path | None,
                 running_version: str = __version__) -> None:
        self.store = store
        self._config = config
        self.cloud = cloud
        self.statuses = statuses
        self.restart = restart
        self.config_path = config_path
        self.running = running_version
        self.trial: dict[str, Any] | None = None
        """The marker while this process is a new release on trial."""
        self.phase = "idle"

    @property
    def root(self) -> Path:
        return self._config().system.release_root

    def managed(self) -> bool:
        """Blocking: the gateway runs from a release root (``current`` link present)."""
        return (self.root / layout.CURRENT).is_symlink()

    # -- start-up: outcomes of the previous process, trial -----------------------------------

    async def startup(self) -> None:
        """Record a rollback the standalone program did; settle a marker left behind."""
        if not await asyncio.to_thread(self.managed):
            return
        # A trial cut by a reboot (power loss) gets one fresh period (rollback.py).
        marker = await asyncio.to_thread(layout.renew_after_reboot, self.root)
        current = await asyncio.to_thread(layout.current_version, self.root)
        if marker is not None and marker.get("new") == self.running == current:
            self.trial = marker
            _LOGGER.warning("Running release %s on trial: it must report healthy within "
                            "%.0f s or %s comes back", self.running,
                            float(marker.get("deadline", 0)) - time.time(),
                            marker.get("previous"))
        elif marker is not None:
            outcome = await asyncio.to_thread(layout.rollback, self.root, "unit-failed")
            _LOGGER.warning("Update marker left behind: %s", outcome)
        await self._record_note()

    async def _record_note(self) -> None:
        note = await asyncio.to_thread(layout.read_json, self.root / layout.NOTE)
        if note is None:
            return
        outcome, reason = str(note.get("outcome")), str(note.get("reason"))
        subject = {"rolled_back": f"update to {note.get('from')} rolled back to "
                                  f"{note.get('to')}",
                   "abandoned": f"update to {note.get('from')} abandoned"}.get(
            outcome, f"update to {note.get('from')} failed")
        failed = str(note.get("from", ""))
        if outcome == "rolled_back" and failed and failed != self.running:
            await asyncio.to_thread(shutil.rmtree, layout.release_dir(self.root, failed), True)
        await self._event("system:update", f"{subject}: {reason}", extra=note)
        await self._finished(ok=False, message=f"{subject}: {reason}", version=self.running)
        await asyncio.to_thread(layout.remove, self.root / layout.NOTE)

    async def watch_trial(self) -> None:
        """Confirm the trial once healthy; roll back in-process at the deadline."""
        marker = self.trial
        if marker is None:
            return
        deadline = float(marker.get("deadline", 0))
        why = "not checked yet"
        while True:
            healthy, why = is_healthy(self.statuses())
            if healthy:
                await self._confirm(marker)
                return
            if time.time() >= deadline:
                break
            await asyncio.sleep(HEALTH_POLL)
        outcome = await asyncio.to_thread(layout.rollback, self.root, "unhealthy")
        _LOGGER.error("Release %s did not become healthy (%s): %s", self.running, why, outcome)
        self.trial = None
        self.restart(f"release {self.running} unhealthy ({why}); rolled back")

    async def _confirm(self, marker: dict[str, Any]) -> None:
        took = time.time() - float(marker.get("started_at", time.time()))
        previous = str(marker.get("previous", ""))
        await asyncio.to_thread(layout.remove, self.root / layout.MARKER)
        removed = await asyncio.to_thread(layout.prune, self.root, {self.running, previous})
        self.trial = None
        message = f"update to {self.running} succeeded (healthy {took:.1f} s after the switch)"
        _LOGGER.info("%s; releases removed: %s", message, ", ".join(removed) or "none")
        await self._event("system:update", message,
                          extra={"from": previous, "to": self.running,
                                 "healthy_after_s": round(took, 3), "removed": removed})
        await self._finished(ok=True, message=message, version=self.running)

    # -- check, download, install, switch ----------------------------------------------------

    async def check(self, actor: str) -> Offer | None:
        """Ask the cloud for the newest release; record the check. None: nothing newer."""
        try:
            if self.cloud is None:
                raise UpdateFailed("this gateway has no cloud link")
            python, machine = runtime_tag()
            answer = await self.cloud.latest_release(
                {"version": self.running, "python": python, "machine": machine})
            offer = Offer.from_json(answer.get("release") if isinstance(answer, dict)
                                    else answer)
            why_not = releases.check_order(self.running, offer) if offer else "no release"
        except ClgwdError as err:
            await self._set_check({"at": time.time(), "ok": False, "error": err.message})
            raise
        result = {"at": time.time(), "ok": True, "available": why_not is None,
                  "offered": offer.as_json() if offer else None, "note": why_not or ""}
        await self._set_check(result)
        subject = (f"update check: {offer.version} available" if offer and why_not is None
                   else f"update check: nothing to install ({why_not})")
        await self._event(actor, subject, extra=result)
        return offer if why_not is None else None

    async def update(self, actor: str) -> None:
        """The whole update, from the check to the restart; failures are recorded."""
        os_failure = await self._os_updates(actor)
        try:
            self.phase = "checking"
            offer = await self.check(actor)
            if offer is None:
                return
            self.phase = "downloading"
            key = await self._release_key()
            url, tls = await self._tls()
            cfg = self._config().system
            state_dir = self._config().state.dir
            bundle = await releases.download(url, tls, offer, state_dir,
                                             max_bytes=cfg.update_max_bytes,
                                             limit=cfg.update_timeout)
            self.phase = "installing"
            manifest = await releases.install(self.root, bundle, key, cfg.update_max_bytes,
                                              self.config_path)
            if manifest.version != offer.version:
                raise UpdateFailed(f"the cloud offered {offer.version} but the signed bundle "
                                   f"is {manifest.version}")
            self.phase = "switching"
            await self._event(actor, f"update to {offer.version} installed; switching from "
                                     f"{self.running} and restarting",
                              extra={"from": self.running, "to": offer.version})
            await asyncio.to_thread(releases.begin_switch, self.root, self.running,
                                    offer.version, cfg.update_health_timeout)
            await asyncio.to_thread(bundle.unlink, True)
            self.restart(f"update to {offer.version}")
        except ClgwdError as err:
            _LOGGER.error("Update failed: %s", err.message)  # noqa: TRY400 - expected
            await self._event(actor, f"update failed: {err.message}")
            message = f"{os_failure}; {err.message}" if os_failure else err.message
            await self._finished(ok=False, message=message, version=self.running)
        finally:
            self.phase = "idle"

    async def _os_updates(self, actor: str) -> str | None:
        """The image's OS security updates, in the same window, recorded the same way;
        returns what failed, if anything."""
        cfg = self._config().system
        if cfg.os_update_command is None:
            return None
        self.phase = "os-updates"
        result = await run_command(cfg.os_update_command, cfg.update_timeout)
        self.phase = "idle"
        record = {**result.as_json(), "finished_at": time.time()}
        await self.store.settings.set(LAST_OS_SETTING, record)
        summary = result.output_tail[-1] if result.ok and result.output_tail else ""
        subject = (f"OS security updates done{': ' + summary if summary else ''}"
                   if result.ok else f"OS security updates failed: {result.summary()}")
        await self._event(actor, subject, extra={"result": result.as_json()})
        if result.ok:
            return None
        failure = f"OS security updates: {result.summary()}"
        _LOGGER.error("%s", failure)
        await self.store.alerts.raise_alert(UPDATE_FAILED, Severity.WARNING,
                                            f"Update failed: {failure}")
        return failure

    async def _release_key(self) -> Ed25519PublicKey:
        path = self._config().system.release_key_file
        if await asyncio.to_thread(path.exists):
            try:
                return await asyncio.to_thread(load_public_key, path)
            except ReleaseKeyError as err:
                raise UpdateFailed(f"the pinned release key is unusable: {err.message}"
                                   ) from None
        enrolled = await self.cloud.enrolled_release_key() if self.cloud else ""
        if not enrolled:
            raise UpdateFailed(f"no release key: {path} is missing and the cloud gave none "
                               "at enrollment")
        try:
            return Ed25519PublicKey.from_public_bytes(base64.b64decode(enrolled, validate=True))
        except (ValueError, binascii.Error):
            raise UpdateFailed("the release key from enrollment is damaged") from None

    async def _tls(self) -> tuple[str, Any]:
        assert self.cloud is not None
        try:
            return await self.cloud.cloud_tls()
        except ClgwdError as err:
            raise UpdateFailed(err.message) from None

    # -- record --------------------------------------------------------------------------------

    async def _set_check(self, value: dict[str, Any]) -> None:
        await self.store.settings.set(LAST_CHECK_SETTING, value)

    async def _event(self, actor: str, subject: str, *,
                     extra: dict[str, Any] | None = None) -> None:
        async with self.store.db.transaction() as tx:
            await self.store.history.record(tx, Event(
                actor=actor, action=Action.OTHER, asset=ASSET, subject=subject,
                extra=extra or {}))

    async def _finished(self, *, ok: bool, message: str, version: str) -> None:
        await self.store.settings.set(LAST_UPDATE_SETTING, {
            "ok": ok, "finished_at": time.time(), "version": version, "message": message})
        if ok:
            await self.store.alerts.clear(UPDATE_FAILED)
        else:
            await self.store.alerts.raise_alert(UPDATE_FAILED, Severity.WARNING,
                                                f"Update failed: {message}")
