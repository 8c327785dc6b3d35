"""Component ``monitor``: the SNMP agent, MQTT publishing and the monitoring metrics.

It reads the other parts only through their ``status()`` (``GatewayView``) and the
store (outbox depth, active alerts, and the outbox's ``event``/``alert`` records, which
it tails to publish events over MQTT and send alert notifications over SNMP).

Its settings are the config file's ``monitor`` section with what the Advanced page, the
CLI or the cloud saved over it (``monitor.set``; ``clgwd.settings`` owns the rule): a
saved change is applied at once, without a restart, or refused and nothing is saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import platform
import socket
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Final, Self

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from clgwd import __version__
from clgwd.commands import CommandContext, CommandRouter
from clgwd.component import ComponentState, ComponentStatus, StatusTracker
from clgwd.config import ClgwdConfig
from clgwd.config.monitor import MonitorConfig
from clgwd.errors import ClgwdError, StartupError
from clgwd.metrics import Metrics
from clgwd.monitor import mib
from clgwd.monitor.view import GatewayView, gateway_view
from clgwd.settings import (
    InvalidSavedSettings,
    SavedSettings,
    forget_section,
    prepare,
    save_section,
)
from clgwd.settings.rule import public, raw_fields
from clgwd.store import Action, Alert, Event, Store
from clgwd.store.db import Transaction
from clgwd.tasks import TaskScope

_LOGGER = logging.getLogger(__name__)

REFRESH_INTERVAL: Final = 5.0
"""Seconds between reads of the outbox depth, active alerts and new outbox records."""
TAIL_BATCH: Final = 200
_TAILED_KINDS: Final = ("event", "event.batch", "alert")
SECTIONS: Final = {"snmp": "monitor.snmp", "mqtt": "monitor.mqtt"}
"""``monitor.set`` params -> the config section each saves."""
ASSETS: Final = {"monitor.snmp": "SNMP agent", "monitor.mqtt": "MQTT publishing"}

StatusSource = Callable[[], Mapping[str, ComponentStatus]]


class MonitorNotRunning(ClgwdError):
    """A settings change arrived while the component is starting or stopping."""

    code = "system_unavailable"
    http_status = 409


def default_prefix() -> str:
    """``clgwd/<gateway name>`` (the host name, without characters MQTT reserves)."""
    name = socket.gethostname().split(".")[0] or "gateway"
    return "clgwd/" + "".join(c if c not in "#+/" else "_" for c in name)


class MonitorComponent:
    """SNMP agent + notifications, MQTT publisher, Prometheus series."""

    name = "monitor"

    def __init__(self, config: ClgwdConfig, store: Store, statuses: StatusSource,
                 metrics: Metrics | None = None, commands: CommandRouter | None = None
                 ) -> None:
        self._file = config
        """The config file's settings; ``_effective`` has what was saved over them."""
        self._effective = SavedSettings().resolve(config)
        self._settings_lock = asyncio.Lock()
        self._running = False
        """Entered and not yet leaving: only then may a command change the settings
        (the control socket opens before this component starts)."""
        self._logged_notes: set[str] = set()
        self._config = config.monitor
        self._store = store
        self._statuses = statuses
        self.tracker = StatusTracker(self.name)
        self.scope = TaskScope(self.name)
        self._depth = 0
        self._alerts: list[Alert] = []
        self._tail_seq = 0
        self._started = time.monotonic()
        self._agent: Any = None
        self._notifier: Any = None
        self._mqtt: Any = None
        self._mqtt_task: asyncio.Task[Any] | None = None
        self.mqtt_state = "off"
        self.mqtt_message = ""
        self.notifications_sent = 0
        self._last_published_view = ""
        self.notification_errors = 0
        self._system = mib.SystemInfo(
            descr=f"clgwd {__version__} on {platform.system()} "
                  f"{platform.release()} {platform.machine()}",
            name=socket.gethostname(), contact=self._config.snmp.contact,
            location=self._config.snmp.location, started=self._started)
        if metrics is not None:
            metrics.registry.register(_MonitorCollector(self))
        if commands is not None:
            commands.register("monitor.get", self._cmd_get, mutating=False)
            commands.register("monitor.set", self._cmd_set, mutating=True)
            commands.register("monitor.forget", self._cmd_forget, mutating=True)

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self.tracker.set(ComponentState.STARTING)
        await self.scope.__aenter__()
        try:
            row = await self._store.db.fetchone("SELECT max(seq) FROM outbox")
            self._tail_seq = int(row[0] or 0) if row else 0
            await self._refresh()
            await self._load_settings()
            self._config = self._effective.config.monitor
            await self._start_agent(self._config)
        except BaseException:
            await self.scope.__aexit__(None, None, None)
            raise
        self._start_mqtt(self._config)
        self._update_status()
        self._running = True
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._running = False
        self.tracker.set(ComponentState.STOPPING)
        await self.scope.__aexit__(*exc_info)
        self._stop_agent()
        self.tracker.set(ComponentState.STOPPED)

    async def run(self) -> None:
        while True:
            try:
                await self._refresh()
                await self._tail_outbox()
            except Exception as err:
                _LOGGER.warning("Monitor refresh failed: %s (%s)", err, type(err).__name__)
            self._update_status()
            self._republish_if_changed()
            await asyncio.sleep(REFRESH_INTERVAL)

    async def apply_config(self, config: ClgwdConfig) -> None:
        """A new config file: what was saved on the page still applies over it."""
        async with self._settings_lock:
            self._file = config
            await self._load_settings()
            await self._apply(self._effective.config.monitor)

    async def _load_settings(self) -> None:
        self._effective = (await SavedSettings.load(self._store)).resolve(self._file)
        notes = {note for note in self._effective.notes if "monitor." in note}
        for note in sorted(notes - self._logged_notes):  # once, when it appears
            _LOGGER.warning("Monitoring settings: %s", note)
        self._logged_notes = notes

    async def _apply(self, new: MonitorConfig) -> None:
        old, self._config = self._config, new  # a failed start is undone by re-applying old
        if new.snmp != old.snmp:
            self._system = dataclasses.replace(self._system, contact=new.snmp.contact,
                                               location=new.snmp.location)
            self._stop_agent()
            await self._start_agent(new)
        if new.mqtt != old.mqtt:
            await self._stop_mqtt()
            self._start_mqtt(new)
        self._update_status()

    # -- commands: the settings the Advanced page, the CLI and the cloud change -------------

    async def _cmd_get(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        """``monitor.get``: the settings in force (secrets as "set" or null) with each
        key's source, and the agent's and the broker connection's state."""
        return self.settings_view()

    def settings_view(self) -> dict[str, Any]:
        snmp, mqtt = self._config.snmp, self._config.mqtt
        return {
            "snmp": {**public(raw_fields(snmp)),
                     "bound": [f"{h}:{p}" for h, p in self.agent_bound()],
                     "auth_failures": self.auth_failures()},
            "mqtt": {**public(raw_fields(mqtt)),
                     "effective_topic_prefix": mqtt.topic_prefix or default_prefix(),
                     "state": self.mqtt_state, "message": self.mqtt_message},
            "settings": self._effective.report(SECTIONS.values()),
            "notes": [n for n in self._effective.notes if "monitor." in n],
        }

    async def _cmd_set(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        """``monitor.set {"snmp": {...}, "mqtt": {...}}``: validate, apply live, save
        (docs/settings.md); a change that cannot apply is refused and nothing is saved."""
        unknown = sorted(set(params) - set(SECTIONS))
        if unknown or not params or not all(isinstance(v, Mapping) for v in params.values()):
            raise InvalidSavedSettings(f"monitor: send snmp and/or mqtt, each an object of "
                                       f"settings{f' (not {unknown[0]})' if unknown else ''}")
        async with self._settings_lock:
            self._check_running()
            return await self._set_locked(params, ctx)

    def _check_running(self) -> None:
        if not self._running:
            raise MonitorNotRunning("the monitoring is starting or stopping; try again in a "
                                    "moment")

    async def _set_locked(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        saved = await SavedSettings.load(self._store)
        new = self._config
        prepared = {}
        for key, name in SECTIONS.items():
            if key in params:
                prepared[name] = prepare(self._file, name, params[key],
                                         getattr(self._config, key),
                                         saved.sections.get(name))
                new = new.model_copy(update={key: prepared[name].section})

        async def write(tx: Transaction) -> None:
            for name, done in prepared.items():
                await save_section(tx, self._store, name, done.values, ctx.actor)
                if done.changed:
                    await self._store.history.record(tx, Event(
                        actor=ctx.actor, action=Action.EDIT, asset=ASSETS[name],
                        subject=name, properties_changed=done.changed, core=done.shown))

        await self._apply_and_store(new, write)
        changed = [f"{n}.{k}" for n, d in prepared.items() for k in d.changed]
        _LOGGER.info("Monitoring settings saved by %s (changed: %s)", ctx.actor,
                     ", ".join(changed) or "none")
        return self.settings_view()

    async def _cmd_forget(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        """``monitor.forget {"sections": ["snmp", "mqtt"]}``: drop what was saved for those
        sections, so the config file's values apply again (at once)."""
        sections = params.get("sections")
        if set(params) - {"sections"} or not isinstance(sections, list) or not sections \
                or not all(isinstance(s, str) and s in SECTIONS for s in sections):
            raise InvalidSavedSettings("sections: a list of saved monitoring sections to "
                                       "forget, of snmp, mqtt")
        async with self._settings_lock:
            self._check_running()
            saved = await SavedSettings.load(self._store)
            names = [SECTIONS[s] for s in dict.fromkeys(sections) if SECTIONS[s] in
                     saved.sections]
            if names:
                rest = {k: v for k, v in saved.sections.items() if k not in names}
                new = dataclasses.replace(saved, sections=rest).resolve(self._file).config.monitor

                async def write(tx: Transaction) -> None:
                    for name in names:
                        await forget_section(tx, self._store, name)
                    await self._store.history.record(tx, Event(
                        actor=ctx.actor, action=Action.DELETE, asset="Saved settings",
                        subject=", ".join(names), properties_changed=names))

                await self._apply_and_store(new, write)
                _LOGGER.info("Saved settings forgotten by %s: %s", ctx.actor, ", ".join(names))
        return {"forgotten": names, **self.settings_view()}

    async def _apply_and_store(self, new: MonitorConfig,
                               write: Callable[[Transaction], Awaitable[None]]) -> None:
        """Apply ``new`` live, then store the change with ``write``: if either fails, the
        running settings are put back and nothing is saved."""
        old = self._config
        try:
            await self._apply(new)
        except StartupError as err:
            await self._apply(old)
            raise InvalidSavedSettings(f"{err.message}; nothing was saved") from None
        try:
            async with self._store.db.transaction() as tx:
                await write(tx)
        except BaseException:
            await self._apply(old)
            raise
        await self._load_settings()

    # -- the view ----------------------------------------------------------------------

    def view(self) -> GatewayView:
        return gateway_view(self._statuses(), outbox_depth=self._depth, alerts=self._alerts)

    def agent_bound(self) -> list[tuple[str, int]]:
        return list(self._agent.bound) if self._agent is not None else []

    def auth_failures(self) -> int:
        return int(self._agent.auth_failures()) if self._agent is not None else 0

    async def _refresh(self) -> None:
        self._depth = await self._store.outbox.depth()
        self._alerts = await self._store.alerts.active()

    def _snapshot(self) -> list[tuple[Any, Any]]:
        return mib.objects(self.view(), self._system, time.monotonic(), self.auth_failures())

    def _mqtt_status(self) -> dict[str, Any]:
        return self.view().as_json()

    # -- SNMP ----------------------------------------------------------------------------

    async def _start_agent(self, config: MonitorConfig) -> None:
        snmp = config.snmp
        if snmp.traps:
            from clgwd.monitor.snmp import Notifier  # noqa: PLC0415

            self._notifier = Notifier()
        if not snmp.listen:
            return
        from clgwd.monitor.snmp import SnmpAgent  # noqa: PLC0415

        agent = SnmpAgent(snmp.listen, self._snapshot, community=snmp.community,
                          users=snmp.users, max_repetitions=snmp.max_repetitions)
        try:
            await agent.start()
        except OSError as err:
            raise StartupError(f"monitor.snmp.listen: cannot bind the SNMP agent: "
                               f"{err.strerror or err}") from err
        self._agent = agent

    def _stop_agent(self) -> None:
        if self._agent is not None:
            self._agent.close()
            self._agent = None
        if self._notifier is not None:
            self._notifier.close()
            self._notifier = None

    async def _notify(self, record: Mapping[str, Any]) -> None:
        if self._notifier is None:
            return
        from clgwd.monitor.snmp import NotificationTarget  # noqa: PLC0415

        users = {u.name: u for u in self._config.snmp.users}
        oid, binds = mib.alert_notification(
            str(record.get("state", "")), str(record.get("code", "")),
            str(record.get("severity", "")), str(record.get("message", "")))
        for target in self._config.snmp.traps:
            error = await self._notifier.send(
                NotificationTarget(target.address, target.community,
                                   users.get(target.user) if target.user else None),
                oid, binds, time.monotonic() - self._started)
            if error is None:
                self.notifications_sent += 1
            else:
                self.notification_errors += 1
                _LOGGER.warning("SNMP notification to %s failed: %s", target.address, error)

    # -- MQTT ----------------------------------------------------------------------------

    def _start_mqtt(self, config: MonitorConfig) -> None:
        if config.mqtt.url is None:
            self.mqtt_state, self.mqtt_message = "off", ""
            return
        from clgwd.monitor.mqtt import MqttPublisher  # noqa: PLC0415

        prefix = config.mqtt.topic_prefix or default_prefix()
        self._mqtt = MqttPublisher(config.mqtt, prefix, self._mqtt_status, self._on_mqtt,
                                   client_id=f"clgwd-{socket.gethostname()}"[:64])
        self._mqtt_task = self.scope.create_task(self._mqtt.run(), name="clgwd[monitor].mqtt")

    async def _stop_mqtt(self) -> None:
        task, self._mqtt_task = self._mqtt_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._mqtt = None

    def _republish_if_changed(self) -> None:
        """Publish the status as soon as the view changed, not only on the interval."""
        if self._mqtt is None:
            return
        current = json.dumps(self.view().as_json(), sort_keys=True, default=str)
        if current != self._last_published_view:
            self._last_published_view = current
            self._mqtt.status_changed()

    def _on_mqtt(self, state: str, message: str) -> None:
        self.mqtt_state, self.mqtt_message = state, message
        self._update_status()

    # -- the outbox tail ------------------------------------------------------------------

    async def _tail_outbox(self) -> None:
        """Publish new history events and alert changes (MQTT) and notify alerts (SNMP)."""
        last = await self._store.db.fetchone("SELECT max(seq) FROM outbox")
        newest = int(last[0] or 0) if last else 0
        if self._notifier is None and self._mqtt is None:
            self._tail_seq = max(self._tail_seq, newest)
            return
        kinds: tuple[str, ...] = _TAILED_KINDS if self._mqtt is not None else ("alert",)
        marks = ", ".join("?" * len(kinds))
        rows = await self._store.db.fetchall(
            f"SELECT seq, kind, payload FROM outbox WHERE seq > ? AND kind IN ({marks})"  # noqa: S608 - placeholders only
            " ORDER BY seq LIMIT ?", (self._tail_seq, *kinds, TAIL_BATCH))
        if rows:
            last_row = int(rows[-1]["seq"])  # a full batch: the rest comes next time
            newest = last_row if len(rows) == TAIL_BATCH else max(newest, last_row)
            # A sync's event batches are up to 64 KB each: parse them off the loop.
            records = await asyncio.to_thread(
                lambda: [(r["kind"], json.loads(r["payload"])) for r in rows])
            for kind, payload in records:
                await self._publish_record(kind, payload)
            if self._mqtt is not None:
                self._mqtt.status_changed()
        self._tail_seq = max(self._tail_seq, newest)

    async def _publish_record(self, kind: str, payload: dict[str, Any]) -> None:
        if kind == "alert":
            if self._mqtt is not None:
                self._mqtt.publish_event({"type": "alert", **payload})
            await self._notify(payload)
        elif self._mqtt is not None:
            for event in payload.get("events", [payload]) if kind == "event.batch" \
                    else [payload]:
                self._mqtt.publish_event({"type": "event", **event})

    # -- status ---------------------------------------------------------------------------

    def _update_status(self) -> None:
        details: dict[str, Any] = {
            "snmp_listen": [f"{h}:{p}" for h, p in self.agent_bound()],
            "snmp_auth_failures": self.auth_failures(),
            "notifications_sent": self.notifications_sent,
            "notification_errors": self.notification_errors,
            "mqtt": self.mqtt_state,
            "mqtt_dropped_events": self._mqtt.dropped_events if self._mqtt else 0,
            # Secrets are shown as set/unset only.
            "snmp_community": "set" if self._config.snmp.community else "unset",
            "snmp_users": [u.name for u in self._config.snmp.users],
            "mqtt_password": "set" if self._config.mqtt.password else "unset",
        }
        parts = []
        if self._agent is not None:
            parts.append("SNMP on " + ", ".join(details["snmp_listen"]))
        if self._mqtt is not None:
            details["mqtt_topic"] = self._mqtt.status_topic
            parts.append(f"MQTT {self.mqtt_state}")
        state = ComponentState.RUNNING
        if self.mqtt_state in ("auth_failed", "unreachable", "config_error"):
            state = ComponentState.DEGRADED
            parts[-1] = f"MQTT: {self.mqtt_message}"
        self.tracker.set(state, "; ".join(parts) or "SNMP and MQTT off", **details)


class _MonitorCollector(Collector):
    """Prometheus series ``clgwd_<part>_<what>_<unit>`` (docs/monitoring.md)."""

    def __init__(self, monitor: MonitorComponent) -> None:
        self._monitor = monitor

    def collect(self) -> Iterator[Metric]:
        view = self._monitor.view()

        def one(name: str, doc: str, value: float | None) -> Metric:
            family = GaugeMetricFamily(name, doc)
            if value is not None:
                family.add_metric([], value)
            return family

        yield one("clgwd_sync_last_run_timestamp_seconds",
                  "Start of the last user sync (Unix time)", view.last_sync_at)
        yield one("clgwd_sync_last_run_ok", "1 when the last user sync succeeded",
                  float(view.last_sync_result == "ok") if view.last_sync_result else None)
        yield one("clgwd_sync_users", "Users the last sync found eligible",
                  view.users_synced)
        yield one("clgwd_link_connected", "1 while the cloud link is online",
                  float(view.link_state == "online"))
        yield one("clgwd_outbox_depth_records", "Records queued for the cloud, not acked",
                  view.outbox_depth)
        yield one("clgwd_tunnel_configured_tunnels", "Reverse tunnels configured",
                  view.tunnels_configured)
        yield one("clgwd_tunnel_started_tunnels", "Reverse tunnels started",
                  view.tunnels_started)
        yield one("clgwd_tunnel_open_streams", "Streams open through the tunnels",
                  view.streams)
        up = GaugeMetricFamily("clgwd_sip_trunk_up", "1 when the trunk answers OPTIONS",
                               labels=["trunk"])
        rtt = GaugeMetricFamily("clgwd_sip_trunk_last_rtt_seconds",
                                "Last OPTIONS round-trip time", labels=["trunk"])
        for trunk in view.trunks:
            up.add_metric([trunk.name], float(trunk.state in ("up", "reachable", "ok")))
            if trunk.rtt_ms is not None:
                rtt.add_metric([trunk.name], trunk.rtt_ms / 1000)
        yield up
        yield rtt
        alerts = GaugeMetricFamily("clgwd_alert_active", "1 for each active alert",
                                   labels=["code", "severity"])
        for alert in view.alerts:
            alerts.add_metric([alert.code, alert.severity.value], 1.0)
        yield alerts
        yield one("clgwd_inventory_last_submitted_timestamp_seconds",
                  "When the inventory report was last queued (Unix time)",
                  view.inventory_last_submitted)
        yield one("clgwd_inventory_next_submission_timestamp_seconds",
                  "When the inventory is next collected (Unix time)",
                  view.inventory_next_submission)
        yield one("clgwd_snmp_auth_failures_total",
                  "SNMP requests refused for wrong community, user or keys",
                  self._monitor.auth_failures())
        yield one("clgwd_mqtt_connected", "1 while connected to the MQTT broker",
                  float(self._monitor.mqtt_state == "connected"))
