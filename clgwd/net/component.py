"""Component ``network``: Ethernet ports reconciled against the kernel, with commit-confirm.

The component is three layers, one module each: ``clgwd.net.reconcile`` (desired ports
made real in the kernel, links watched, status), ``clgwd.net.dhcp`` (one DHCP client per
DHCP port) and this module (lifecycle, the public API the router, page and CLI call,
and commit-confirm). It registers the ``network.*`` commands (``clgwd.net.commands``).

Commit-confirm state machine (``TrialPhase``), changed only in ``_set_trial``::

    IDLE --propose--> ON_TRIAL --confirm--> IDLE (candidate becomes confirmed)
                          |
                          +--deadline / restart--> IDLE (previous re-applied, alert)
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Sequence
from enum import StrEnum
from typing import Any, Self

from pydantic import ValidationError

from clgwd.commands import CommandRouter
from clgwd.component import ComponentState, StatusTracker
from clgwd.config import ClgwdConfig
from clgwd.config.loader import render_validation_error
from clgwd.config.network import NetworkConfig, PortConfig
from clgwd.net.commands import NetworkCommands
from clgwd.net.dhcp import DhcpSupervisor
from clgwd.net.trial import (
    InvalidPortConfig,
    NothingToConfirm,
    Trial,
    TrialStore,
    WrongConfirmToken,
)
from clgwd.store import Action, Alerts, Event, Severity, Store

_LOGGER = logging.getLogger(__name__)

ROLLBACK_ALERT = "network_rolled_back"
FINISHED_TRIALS_KEPT = 8
"""Outcomes of recent trials kept (in memory) to explain a stale confirm link."""


class TrialPhase(StrEnum):
    IDLE = "idle"
    ON_TRIAL = "on_trial"


def _changed_ports(old: Sequence[PortConfig], new: Sequence[PortConfig]) -> list[str]:
    """Names of ports added, removed or changed (the event's properties_changed)."""
    before = {p.name: p for p in old}
    after = {p.name: p for p in new}
    return sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))


class NetworkComponent(DhcpSupervisor):
    """Owns the Ethernet ports, DNS servers and commit-confirm (component ``network``).

    ``commands``: the router to register ``network.get/apply/confirm/preflight`` with
    (the same code for cloud, page and CLI). ``netns`` manages the ports of another
    network namespace; used by tests only. The DHCP client always runs in the process's
    own namespace (it opens raw sockets), so DHCP ports require ``netns=None``.
    """

    name = "network"

    def __init__(self, config: ClgwdConfig, store: Store,
                 commands: CommandRouter | None = None, *, netns: str | None = None) -> None:
        super().__init__(config.network, config.state.dir, StatusTracker(self.name), netns)
        self._store = store
        self._trials = TrialStore(store.db, store.settings)
        self._alerts: Alerts = store.alerts
        self._trial: Trial | None = None
        self._trial_changed = asyncio.Event()
        self._apply_lock = asyncio.Lock()
        self._finished: OrderedDict[str, str] = OrderedDict()
        """Confirm token -> what became of that trial, for a clear answer to a stale link."""
        self.commands = NetworkCommands(self)
        """The ``network.*`` commands (the daemon sets their ``preflight_targets``)."""
        if commands is not None:
            self.commands.register(commands)

    # -- lifecycle --------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self.tracker.set(ComponentState.STARTING)
        try:
            await self._start_desired()  # opens netlink when there are ports to manage
        except BaseException:
            await self._close_netlink(None, None, None)
            raise
        self._update_status()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.tracker.set(ComponentState.STOPPING)
        await self._close_netlink(*exc_info)
        self.tracker.set(ComponentState.STOPPED)

    async def run(self) -> None:
        """Link monitor, trial timer, DHCP supervisor and lease writer, until cancelled."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._monitor_loop(), name="clgwd[network].monitor")
            tg.create_task(self._trial_loop(), name="clgwd[network].trial")
            tg.create_task(self._lease_writer(), name="clgwd[network].leases")
            tg.create_task(self._dhcp_supervisor(tg), name="clgwd[network].dhcp")

    async def apply_config(self, config: ClgwdConfig) -> None:
        """A reloaded file: new ports go on trial; other settings apply at once."""
        old, self._config = self._config, config.network
        if tuple(config.network.ports) != tuple(old.ports):
            await self._trials.write(file_seen=config.network.ports)
            await self.propose(tuple(config.network.ports), actor="local:config-file")

    # -- public API (command router, web, CLI) -----------------------------------------

    @property
    def trial(self) -> Trial | None:
        return self._trial

    async def propose(self, ports: Sequence[PortConfig], *, actor: str,
                      confirm_within: float | None = None) -> Trial:
        """Apply ``ports`` now; unless confirmed before the deadline, roll them back."""
        try:  # cross-port checks (overlap, unique names) before any netlink call
            NetworkConfig.model_validate({"ports": [p.model_dump() for p in ports]})
        except ValidationError as err:
            issues = render_validation_error(err)
            raise InvalidPortConfig("; ".join(f"network.{i}" for i in issues)) from None
        async with self._apply_lock:
            previous = self._trial.previous if self._trial else self._desired
            now = time.time()
            trial = Trial(candidate=tuple(ports), previous=previous,
                          deadline=now + (confirm_within or self._config.confirm.timeout),
                          actor=actor, started=now, token=secrets.token_urlsafe(18))
            async with self._store.db.transaction() as tx:
                await self._trials.write_in(tx, trial=trial)
                await self._store.history.record(tx, Event(
                    actor=actor, action=Action.EDIT, asset="Network ports",
                    subject="applied, awaiting confirmation",
                    properties_changed=_changed_ports(previous, trial.candidate),
                    extra={"deadline": trial.deadline}))
            if self._trial is not None:
                self._finish(self._trial, f"replaced by a newer change from {actor}")
            self._set_trial(trial)
            await self._reconcile(trial.candidate)
        _LOGGER.warning("Network change by %s applied; confirm within %.0f s or it is rolled "
                        "back", actor, trial.remaining())
        return trial

    async def confirm(self, actor: str, token: str | None = None) -> dict[str, Any]:
        """Keep the config on trial.

        ``token`` (the onboarding page's confirm link) must name the trial waiting for
        confirmation; without one (CLI, cloud) whatever is on trial is confirmed.
        """
        async with self._apply_lock:
            trial = self._trial
            if token is not None:
                self._check_token(trial, token)
            if trial is None:
                raise NothingToConfirm("no network change is waiting for confirmation")
            async with self._store.db.transaction() as tx:
                await self._trials.write_in(tx, confirmed=trial.candidate, trial=None)
                await self._store.history.record(tx, Event(
                    actor=actor, action=Action.EDIT, asset="Network ports",
                    subject="confirmed", extra={"ports": [p.name for p in trial.candidate]}))
            self._finish(trial, "already confirmed")
            self._set_trial(None)
        await self._alerts.clear(ROLLBACK_ALERT)
        _LOGGER.info("Network change confirmed by %s", actor)
        return {"confirmed": True}

    def _check_token(self, trial: Trial | None, token: str) -> None:
        """Raise a clear 409 unless ``token`` names ``trial`` (constant-time compare)."""
        if trial is not None and trial.token and hmac.compare_digest(
                trial.token.encode(), token.encode()):
            return
        outcome = self._finished.get(token)
        if outcome is not None:
            raise WrongConfirmToken(f"this network change was {outcome}; nothing to confirm")
        if trial is None:
            raise NothingToConfirm("no network change is waiting for confirmation; this "
                                   "confirm link is unknown or expired")
        raise WrongConfirmToken("this confirm link does not belong to the network change "
                                "waiting for confirmation (use the link shown for it)")

    def _finish(self, trial: Trial, outcome: str) -> None:
        if not trial.token:
            return
        self._finished[trial.token] = outcome
        while len(self._finished) > FINISHED_TRIALS_KEPT:
            self._finished.popitem(last=False)

    # -- start-up decision -----------------------------------------------------------

    async def _start_desired(self) -> None:
        """Pick what to apply at start: roll back a stale trial, or trial a changed file."""
        file_ports = tuple(self._config.ports)
        confirmed = await self._trials.confirmed()
        trial = await self._trials.trial()
        seen = await self._trials.file_seen()
        if trial is not None:
            _LOGGER.warning("A network change by %s was not confirmed before the restart; "
                            "rolling it back", trial.actor)
            self._desired = trial.candidate
            await self._rollback(trial, "the gateway restarted before it was confirmed")
            return
        if confirmed is None:
            await self._trials.write(confirmed=file_ports, file_seen=file_ports)
            await self._reconcile(file_ports)
            return
        await self._reconcile(confirmed)
        if seen != file_ports:
            await self._trials.write(file_seen=file_ports)
            if file_ports != confirmed:
                await self.propose(file_ports, actor="local:config-file")

    # -- commit-confirm ------------------------------------------------------------------

    def _set_trial(self, trial: Trial | None) -> None:
        """The one place the trial phase changes."""
        old = TrialPhase.ON_TRIAL if self._trial else TrialPhase.IDLE
        new = TrialPhase.ON_TRIAL if trial else TrialPhase.IDLE
        self._trial = trial
        if old != new:
            _LOGGER.info("network commit-confirm: %s -> %s", old.value, new.value)
        self._trial_changed.set()
        self._update_status()

    async def _trial_loop(self) -> None:
        while True:
            self._trial_changed.clear()
            trial = self._trial
            if trial is None:
                await self._trial_changed.wait()
                continue
            try:
                await asyncio.wait_for(self._trial_changed.wait(), trial.remaining())
            except TimeoutError:
                async with self._apply_lock:
                    if self._trial is trial:
                        await self._rollback(trial, f"not confirmed within "
                                                    f"{trial.deadline - trial.started:.0f} s")

    async def _rollback(self, trial: Trial, reason: str) -> None:
        _LOGGER.warning("Rolling back the network change by %s: %s", trial.actor, reason)
        async with self._store.db.transaction() as tx:
            await self._trials.write_in(tx, confirmed=trial.previous, trial=None)
            await self._store.history.record(tx, Event(
                actor="local:network", action=Action.EDIT, asset="Network ports",
                subject="rolled back", extra={"reason": reason, "by": trial.actor}))
            await self._alerts.raise_in(tx, ROLLBACK_ALERT, Severity.WARNING,
                                        f"Network change by {trial.actor} was rolled back: "
                                        f"{reason}")
        self._finish(trial, f"rolled back ({reason})")
        self._set_trial(None)
        await self._reconcile(trial.previous)

    # -- status ----------------------------------------------------------------------------

    def _update_status(self) -> None:
        ports = self.port_states()
        trial = self._trial
        details: dict[str, Any] = {
            "ports": [p.as_json() for p in ports],
            "trial": None if trial is None else {
                "actor": trial.actor, "deadline": trial.deadline,
                "remaining": round(trial.remaining(), 1)},
        }
        problems = [f"{p.name}: {p.error or 'no carrier'}" for p in ports
                    if p.error or (p.present and not p.carrier)]
        problems += [f"{p.name}: interface not found" for p in ports if not p.present
                     and not p.error]
        if trial is not None:
            message = f"change by {trial.actor} awaits confirmation"
        elif not ports:
            message = "no ports configured"
        else:
            message = "; ".join(problems)
        state = ComponentState.DEGRADED if problems else ComponentState.RUNNING
        self.tracker.set(state, message, **details)
