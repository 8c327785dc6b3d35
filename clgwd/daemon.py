"""The daemon: builds the components, runs them under one TaskGroup, handles signals.

Order matters and is explicit: components are entered (opened, sockets bound) in the
order ``build_components`` returns them and exited in reverse. Their long-lived loops
run as named tasks in one root ``asyncio.TaskGroup``; if one fails unexpectedly the
group cancels the rest and the process exits non-zero so systemd restarts it.

Signals: SIGTERM/SIGINT stop (within ``daemon.stop_timeout``, else a hard exit);
SIGHUP reloads the config file, applying it only if it is valid (keep last-good).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from clgwd import __version__
from clgwd.commands import CommandRouter
from clgwd.component import HEALTHY_STATES, Component, ComponentState, ComponentStatus
from clgwd.config import ClgwdConfig, ConfigError, load_config
from clgwd.control import ControlServer
from clgwd.errors import EXIT_FAILURE, EXIT_OK, EXIT_RESTART, ClgwdError
from clgwd.inventory.component import InventoryComponent
from clgwd.link.component import CloudLink
from clgwd.logsetup import set_level
from clgwd.metrics import Metrics
from clgwd.monitor.component import MonitorComponent
from clgwd.net.advertiser import MdnsAdvertiser
from clgwd.net.banner import BannerExtras, banner_hook
from clgwd.net.component import NetworkComponent
from clgwd.net.preflight import config_targets
from clgwd.sdnotify import Notifier
from clgwd.sip.component import SipTrunks
from clgwd.sip.trace import CallTrace
from clgwd.store import Action, Event, Store
from clgwd.sync.component import SyncService
from clgwd.system import DaemonHooks, ResetGate, SystemComponent
from clgwd.tunnel.component import TunnelComponent
from clgwd.web.server import HttpServer

_LOGGER = logging.getLogger(__name__)

LOOP_LAG_LIMIT: Final = 5.0


class _StopRequested(Exception):
    """Raised inside the root TaskGroup to unwind it after a stop signal."""


class Daemon:
    """One running gateway process."""

    def __init__(
        self,
        config: ClgwdConfig,
        config_path: Path | None,
        *,
        notifier: Notifier | None = None,
        log_level_override: str | None = None,
        component_factory: Callable[[Daemon], Sequence[Component]] | None = None,
    ) -> None:
        self.config = config
        self.config_path = config_path
        self.notifier = notifier or Notifier()
        self.components: list[Component] = []
        self.commands = CommandRouter()
        self.metrics = Metrics()
        self.metrics.bind_status(self.statuses)
        self._log_level_override = log_level_override
        self._factory = component_factory or build_components
        self._stop = asyncio.Event()
        self._reload_requested = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._started = False
        self._exit_code = EXIT_OK
        self._main_task: asyncio.Task[Any] | None = None
        self._force_exit_handle: asyncio.TimerHandle | None = None
        self._reloads = self.metrics.counter("clgwd_config_reloads_total",
                                             "Config reloads by result", ["result"])

    # -- public API -------------------------------------------------------------------

    def statuses(self) -> dict[str, ComponentStatus]:
        return {c.name: c.tracker.current for c in self.components}

    def component(self, name: str) -> Component:
        for comp in self.components:
            if comp.name == name:
                return comp
        raise KeyError(name)

    def request_stop(self, reason: str = "stop requested") -> None:
        """Begin an orderly shutdown; safe to call more than once."""
        if self._stop.is_set():
            return
        _LOGGER.info("Stopping: %s", reason)
        self.notifier.stopping(f"Stopping: {reason}")
        self._stop.set()
        loop = asyncio.get_running_loop()
        self._force_exit_handle = loop.call_later(self.config.daemon.stop_timeout,
                                                  self._force_exit)
        if not self._started and self._main_task is not None:
            self._main_task.cancel()

    def request_restart(self, reason: str) -> None:
        """Stop in order and exit with ``EXIT_RESTART`` so systemd starts us again."""
        self._exit_code = EXIT_RESTART
        self.request_stop(f"{reason}; exiting with {EXIT_RESTART} so systemd restarts clgwd")

    def request_reload(self) -> None:
        self._reload_requested.set()

    async def reload(self) -> dict[str, Any]:
        """Reload the config file; apply it only if it is valid. Returns the outcome."""
        async with self._reload_lock:
            return await self._reload_locked()

    async def run(self) -> int:
        """Run until stopped; returns the process exit code."""
        self._main_task = asyncio.current_task()
        self._install_signal_handlers()
        try:
            return await self._run_components()
        except asyncio.CancelledError:
            if self._stop.is_set():
                _LOGGER.info("Stopped during start-up")
                return EXIT_OK
            raise
        finally:
            self._remove_signal_handlers()
            if self._force_exit_handle is not None:
                self._force_exit_handle.cancel()

    # -- lifecycle ----------------------------------------------------------------------

    async def _run_components(self) -> int:
        exit_code = EXIT_OK
        try:
            async with contextlib.AsyncExitStack() as stack:
                for comp in self._factory(self):
                    comp.tracker.subscribe(self._on_status_change)
                    self.components.append(comp)
                    _LOGGER.info("Starting component %s", comp.name)
                    await stack.enter_async_context(comp)
                    stack.callback(_LOGGER.info, "Stopped component %s", comp.name)
                await self._serve()
        except* _StopRequested:
            _LOGGER.info("Stopped")
            exit_code = self._exit_code
        except* ClgwdError as group:
            for err in _leaves(group):
                _LOGGER.error("%s", err)  # noqa: TRY400 - expected errors need no traceback
            self.notifier.status(f"Failed: {_leaves(group)[0]}")
            exit_code = EXIT_FAILURE
        return exit_code

    async def _serve(self) -> None:
        async with asyncio.TaskGroup() as tg:
            for comp in self.components:
                tg.create_task(comp.run(), name=f"clgwd[{comp.name}].run")
            tg.create_task(self._watchdog_loop(), name="clgwd[daemon].watchdog")
            tg.create_task(self._reload_loop(), name="clgwd[daemon].reload")
            self._started = True
            if self._stop.is_set():
                raise _StopRequested
            self.notifier.ready(self._summary())
            _LOGGER.info("clgwd %s ready: %s", __version__, self._summary())
            await self._stop.wait()
            raise _StopRequested

    def _force_exit(self) -> None:
        _LOGGER.error("Shutdown took longer than %.0f s; exiting hard",
                      self.config.daemon.stop_timeout)
        logging.shutdown()
        os._exit(EXIT_FAILURE)

    def _install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.request_stop, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self.request_stop, "SIGINT")
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)

    def _remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)

    # -- status and watchdog --------------------------------------------------------------

    def _summary(self) -> str:
        statuses = self.statuses()
        problems = [f"{n} {s.state.value}" + (f" ({s.message})" if s.message else "")
                    for n, s in statuses.items() if s.state != ComponentState.RUNNING]
        if not problems:
            return f"Running; {len(statuses)} components healthy"
        return "Running with problems: " + "; ".join(problems)

    def _on_status_change(self, name: str, status: ComponentStatus) -> None:
        if self._started and not self._stop.is_set():
            self.notifier.status(self._summary())

    async def _watchdog_loop(self) -> None:
        """Ping systemd only while every component is healthy and the loop is responsive."""
        interval = self.notifier.watchdog_interval
        if interval is None:
            return
        expected = time.monotonic()
        while True:
            lag = time.monotonic() - expected
            failed = [n for n, s in self.statuses().items() if s.state not in HEALTHY_STATES]
            if failed:
                _LOGGER.error("Withholding watchdog ping: components failed: %s", failed)
            elif lag > LOOP_LAG_LIMIT:
                _LOGGER.error("Withholding watchdog ping: event loop lagged %.1f s", lag)
            else:
                self.notifier.watchdog()
            expected = time.monotonic() + interval
            await asyncio.sleep(interval)

    # -- reload -----------------------------------------------------------------------------

    async def _reload_loop(self) -> None:
        while True:
            await self._reload_requested.wait()
            self._reload_requested.clear()
            await self.reload()

    async def _reload_locked(self) -> dict[str, Any]:
        if self.config_path is None:
            return {"applied": False, "errors": ["daemon was started without a config file"]}
        _LOGGER.info("Reloading config from %s", self.config_path)
        try:
            new = await asyncio.to_thread(load_config, self.config_path)
        except ConfigError as err:
            _LOGGER.error("Config reload rejected, keeping the running config:\n%s", err.render())  # noqa: TRY400
            self.notifier.status(f"Config reload rejected ({len(err.issues)} errors)")
            self._reloads.labels("rejected").inc()
            return {"applied": False, "errors": [str(i) for i in err.issues]}
        old = self.config
        applied: list[Component] = []
        try:
            for comp in self.components:
                await comp.apply_config(new)
                applied.append(comp)
        except ClgwdError as err:
            _LOGGER.error("Config reload failed in %s (%s); restoring the running config",  # noqa: TRY400
                          applied[-1].name if applied else self.components[0].name, err)
            for comp in reversed(applied):
                await comp.apply_config(old)
            self._reloads.labels("failed").inc()
            return {"applied": False, "errors": [str(err)]}
        self.config = new
        set_level(self._log_level_override or new.logging.level)
        await self._record_reload()
        self._reloads.labels("applied").inc()
        _LOGGER.info("Config reloaded")
        self.notifier.status(self._summary())
        return {"applied": True, "errors": []}

    async def _record_reload(self) -> None:
        """Config changes are history events, queued upstream like any other."""
        store = next((c for c in self.components if isinstance(c, Store)), None)
        if store is None:
            return
        async with store.db.transaction() as tx:
            await store.history.record(tx, Event(
                actor="local:config-file", action=Action.EDIT, asset="Gateway configuration",
                subject=str(self.config_path)))


def _leaves(group: BaseExceptionGroup[Any]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


def connect_tunnel(link: CloudLink, tunnel: TunnelComponent) -> None:
    """The tunnel mux rides the link's binary lane; stream tickets name the enrolled
    gateway id and verify with the key the cloud gave at enrollment (unless the
    ``tunnel`` config sets them)."""
    link.set_binary_endpoint(tunnel.mux)
    link.identity_listeners.append(
        lambda e: tunnel.set_enrolled_identity(e.gateway_id, e.tunnel_authority_key))


def banner_extras(http: HttpServer) -> Callable[[], BannerExtras]:
    """The console banner's setup-code hint and certificate fingerprint, asked of the
    HTTP component at each banner (mDNS publishes from ``run``, after every component
    has started, so the certificate is loaded by then)."""
    def extras() -> BannerExtras:
        return BannerExtras(setup_code_hint=http.setup_code_hint(),
                            certificate_fingerprint=http.fingerprint)

    return extras


def build_components(daemon: Daemon) -> list[Component]:
    """The production components, in start order (each may use those before it)."""
    config = daemon.config
    gate = ResetGate(config)  # a pending factory reset wipes the state before it opens
    store = Store(config)
    network = NetworkComponent(config, store, daemon.commands)
    http = HttpServer(config, daemon.statuses, daemon.metrics, store, daemon.commands)
    # The tunnel mux must be open before the link can report a connection to it.
    tunnel = TunnelComponent(config, store, daemon.commands,
                             own_ports=lambda: [port for _, port in http.bound])
    link = CloudLink(config, store, daemon.commands, daemon.statuses, daemon.metrics)
    connect_tunnel(link, tunnel)
    network.commands.preflight_targets = config_targets(lambda: daemon.config, daemon.commands,
                                                        link.proxy.effective)
    system = SystemComponent(store, daemon.commands, DaemonHooks(
        config=lambda: daemon.config, config_path=daemon.config_path, reload=daemon.reload,
        restart=daemon.request_restart, cloud=link, statuses=daemon.statuses))
    return [
        gate,
        store,
        system,
        network,
        tunnel,
        link,
        ControlServer(config, daemon.statuses, daemon.reload, daemon.commands),
        SyncService(config, store, daemon.commands, daemon.metrics),
        CallTrace(config, store, daemon.commands),
        SipTrunks(config, store, daemon.commands, daemon.metrics),
        InventoryComponent(config, store, daemon.commands, daemon.statuses),
        MonitorComponent(config, store, daemon.statuses, daemon.metrics, daemon.commands),
        MdnsAdvertiser(config, network, store.settings,
                       on_published=banner_hook(config, banner_extras(http))),
        http,
    ]
