"""Component ``trunks``: owns the trunks, runs one monitor per trunk, reports state.

Desired state (trunks and the SIP Trunk Application Setup) lives in the state database;
every change through any front door (page, CLI, cloud: the ``sip.trunks.*`` commands)
is validated, stored, then reconciled against the running monitors at once: removed or
changed trunks' monitors stop, new ones start, unchanged ones keep their state. No
restart, no reload.

State changes of a trunk (``unknown``/``up``/``down``) raise or clear the alert
``sip.trunk_down:<name>`` and are recorded as a history event and an upstream
``sip.trunk`` record in one transaction; metrics and ``status()`` follow every check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Final, Self

from clgwd.commands import CommandContext, CommandRouter
from clgwd.component import ComponentState, StatusTracker
from clgwd.config import ClgwdConfig, Secret
from clgwd.metrics import Metrics
from clgwd.retry import Backoff
from clgwd.sip.guidance import guidance
from clgwd.sip.model import (
    APP_SETUP_CLOUD_TRUNK,
    APP_SETUP_PBX_TRUNK,
    AppSetup,
    InvalidTrunk,
    TrunkInput,
    TrunkSpec,
    derive_trunks,
    parse_app_setup,
    parse_trunk,
)
from clgwd.sip.monitor import ProbeResult, Thresholds, TrunkMonitor, TrunkState
from clgwd.sip.transport import Channel, StreamChannel, Target, UdpChannel, UdpHub
from clgwd.store import Action, Event, Severity, Store, Transaction
from clgwd.tasks import TaskScope

_LOGGER = logging.getLogger(__name__)

ALERT_PREFIX: Final = "sip.trunk_down"
ACTOR_MONITOR: Final = "local:sip-monitor"
ASSET: Final = "SIP trunk"
STATUS_DOWN_LISTED: Final = 20
STATUS_REFRESH: Final = 10.0
"""Seconds between refreshes of the per-trunk RTT and peer software in the status
details when no state changes (a state change refreshes them at once): the monitor
exports them (SNMP, MQTT, ``clgwd_sip_trunk_up`` / ``clgwd_sip_trunk_last_rtt_seconds``)
and the inventory lists the peers, without rebuilding the list on each of 1000 trunks' checks."""
RTT_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                      5.0)


class TrunkNotFound(InvalidTrunk):
    code = "trunk_not_found"
    http_status = 404


class TrunkExists(InvalidTrunk):
    code = "trunk_exists"
    http_status = 409


def alert_code(name: str) -> str:
    return f"{ALERT_PREFIX}:{name}"


def _secret_name(name: str) -> str:
    return f"sip.trunk.{name}.password"


@dataclass
class _Running:
    monitor: TrunkMonitor
    task: asyncio.Task[Any]
    loop: Coroutine[Any, Any, None]
    """Closed after the task ends: a task cancelled before it ran never awaited it."""
    sent: Any
    failed: Any
    rtt: Any
    """This trunk's children of the OPTIONS counters (labels() looked up once)."""


class SipTrunks:
    """The trunk owner: model, store, monitors, commands, alerts, metrics."""

    name = "trunks"

    def __init__(self, config: ClgwdConfig, store: Store, commands: CommandRouter | None = None,
                 metrics: Metrics | None = None) -> None:
        self._config = config
        self._store = store
        self.tracker = StatusTracker(self.name)
        self.scope = TaskScope(self.name)
        self._hub = UdpHub()
        self._specs: dict[str, TrunkSpec] = {}
        self._passwords: dict[str, Secret] = {}
        self._setup: AppSetup | None = None
        self._running: dict[str, _Running] = {}
        self._lock = asyncio.Lock()
        self._status_at = 0.0
        metrics = metrics or Metrics()
        self._rtt = metrics.histogram("clgwd_sip_trunk_rtt_seconds",
                                      "Round-trip time of answered OPTIONS", ["transport"],
                                      buckets=RTT_BUCKETS)
        self._sent = metrics.counter("clgwd_sip_options_sent_total",
                                     "OPTIONS checks sent per trunk", ["trunk"])
        self._failed = metrics.counter("clgwd_sip_options_failed_total",
                                       "OPTIONS checks that failed per trunk", ["trunk"])
        if commands is not None:
            commands.register("sip.trunks.get", self._cmd_get, mutating=False)
            commands.register("sip.trunks.set", self._cmd_set, mutating=True)
            commands.register("sip.trunks.check", self._cmd_check, mutating=True)
            commands.register("sip.trunks.guidance", self._cmd_guidance, mutating=False)

    # -- lifecycle ------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self.tracker.set(ComponentState.STARTING, "loading trunks")
        await self.scope.__aenter__()
        try:
            await self._load()
            async with self._lock:
                await self._reconcile()
        except BaseException:
            await self.scope.__aexit__(None, None, None)
            raise
        self._update_status()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            async with self._lock:
                await self._stop(*self._running)
        finally:
            await self.scope.__aexit__(*exc_info)
            self._hub.close()
            self.tracker.set(ComponentState.STOPPED)

    async def run(self) -> None:
        """Nothing of its own: each trunk's monitor runs in ``scope``."""

    async def apply_config(self, config: ClgwdConfig) -> None:
        self._config = config
        for running in self._running.values():
            running.monitor.thresholds = self._thresholds()

    def _thresholds(self) -> Thresholds:
        mon = self._config.sip.monitor
        return Thresholds(down_after=mon.down_after, up_after=mon.up_after)

    async def _load(self) -> None:
        rows = await self._store.db.fetchall("SELECT name, spec FROM sip_trunks ORDER BY name")
        for row in rows:
            self._specs[row["name"]] = TrunkSpec.model_validate_json(row["spec"])
            secret = await self._store.secrets.get(_secret_name(row["name"]))
            if secret is not None:
                self._passwords[row["name"]] = secret
        setup = await self._store.db.fetchone("SELECT setup FROM sip_app_setup WHERE id = 1")
        if setup is not None:
            self._setup = AppSetup.model_validate_json(setup["setup"])

    # -- reconcile ----------------------------------------------------------------------

    async def _reconcile(self) -> None:
        """Make the running monitors match the desired trunks (lock held)."""
        for name in list(self._running):
            mon = self._running[name].monitor
            spec, password = self._specs.get(name), self._passwords.get(name)
            if spec != mon.spec or _reveal(password) != _reveal(mon.password):
                await self._stop(name)
        for name, spec in self._specs.items():
            if name not in self._running:
                self._start(spec, self._passwords.get(name))

    def _channel(self, spec: TrunkSpec, host: str | None = None) -> Channel:
        host = host or spec.host
        target = Target(host, spec.effective_port, spec.transport,
                        spec.server_name or host, spec.ca_file, spec.allow_self_signed)
        if spec.transport == "udp":
            return UdpChannel(self._hub, target)
        return StreamChannel(target, Backoff(min(1.0, spec.interval), spec.interval),
                             connect_limit=spec.timeout)

    def _start(self, spec: TrunkSpec, password: Secret | None) -> None:
        secondary = self._channel(spec, spec.secondary_host) if spec.secondary_host else None
        monitor = TrunkMonitor(spec, password, self._channel(spec), self._thresholds(),
                               self._on_result, secondary=secondary)
        loop = monitor.run()
        task = self.scope.create_task(loop, name=f"clgwd[{self.name}].{spec.name}")
        self._running[spec.name] = _Running(monitor, task, loop, self._sent.labels(spec.name),
                                            self._failed.labels(spec.name),
                                            self._rtt.labels(spec.transport))

    async def _stop(self, *names: str) -> None:
        """Stop these trunks' monitors together (all of them at shutdown)."""
        stopping = [self._running.pop(name) for name in list(names)]
        if not stopping:
            return
        for running in stopping:
            running.task.cancel()
        await asyncio.wait([r.task for r in stopping])
        for running in stopping:
            running.loop.close()
        await asyncio.gather(*(r.monitor.aclose() for r in stopping))
        for name in names:
            for metric in (self._sent, self._failed):
                with contextlib.suppress(KeyError):
                    metric.remove(name)

    # -- results and state changes ---------------------------------------------------------

    async def _on_result(self, monitor: TrunkMonitor, result: ProbeResult,
                         before: TrunkState) -> None:
        name = monitor.spec.name
        if name not in self._running or self._running[name].monitor is not monitor:
            return  # stopped meanwhile
        running = self._running[name]
        running.sent.inc()
        if not result.ok:
            running.failed.inc()
        elif result.rtt_ms is not None:
            running.rtt.observe(result.rtt_ms / 1000)
        after = monitor.health.state
        if after != before:
            await self._record_transition(monitor, before, after, result)
            self._update_status()  # O(trunks): at a state change, else every STATUS_REFRESH
        elif time.monotonic() - self._status_at >= STATUS_REFRESH:
            self._update_status()

    async def _record_transition(self, monitor: TrunkMonitor, before: TrunkState,
                                 after: TrunkState, result: ProbeResult) -> None:
        spec = monitor.spec
        payload = {"trunk": spec.name, "target": spec.target, "transport": spec.transport,
                   "from": before.value, "state": after.value, "reason": result.reason,
                   "note": result.note, "rtt_ms": result.rtt_ms, "at": result.at}
        async with self._store.db.transaction() as tx:
            if after == TrunkState.DOWN:
                await self._store.alerts.raise_in(
                    tx, alert_code(spec.name), Severity.WARNING,
                    f"SIP trunk {spec.name} ({spec.transport.upper()} {spec.target}) is down: "
                    f"{result.reason}")
            else:
                await self._store.alerts.clear_in(tx, alert_code(spec.name))
            await self._store.history.record(tx, Event(
                actor=ACTOR_MONITOR, action=Action.OTHER, asset=ASSET, subject=spec.name,
                properties_changed=["state"], core={"state": after.value, "from": before.value},
                extra={"reason": result.reason, "target": spec.target}))
            await self._store.outbox.enqueue(tx, "sip.trunk", payload)

    def _update_status(self) -> None:
        self._status_at = time.monotonic()
        healths = {n: r.monitor.health for n, r in self._running.items()}
        down = sorted(n for n, h in healths.items() if h.state == TrunkState.DOWN)
        up = sum(1 for h in healths.values() if h.state == TrunkState.UP)
        details: dict[str, Any] = {"total": len(healths), "up": up, "down": len(down),
                                   "unknown": len(healths) - up - len(down),
                                   "down_trunks": {n: healths[n].reason
                                                   for n in down[:STATUS_DOWN_LISTED]},
                                   "trunks": [{"name": n, "state": h.state.value,
                                               "rtt_ms": h.rtt_ms, "server": h.server or None}
                                              for n, h in sorted(healths.items())]}
        if down:
            self.tracker.set(ComponentState.DEGRADED,
                             f"{len(down)} of {len(healths)} SIP trunks down: "
                             f"{', '.join(down[:5])}{' ...' if len(down) > 5 else ''}",
                             **details)
        else:
            self.tracker.set(ComponentState.RUNNING,
                             f"{up} of {len(healths)} SIP trunks up" if healths
                             else "no SIP trunks configured", **details)

    # -- the model's operations (every front door) ----------------------------------------

    def trunk_json(self, name: str) -> dict[str, Any]:
        spec = self._specs[name]
        out = spec.model_dump(mode="json")
        out.update(port=spec.effective_port, target=spec.target,
                   password_set=name in self._passwords)
        running = self._running.get(name)
        health = running.monitor.health.as_json() if running else {
            "state": TrunkState.UNKNOWN.value, "reason": "not monitored", "rtt_ms": None}
        out.update(health)
        return out

    def listing(self) -> dict[str, Any]:
        return {"trunks": [self.trunk_json(n) for n in sorted(self._specs)],
                "app_setup": self._setup.model_dump(mode="json") if self._setup else None}

    def _known_pbx_hosts(self) -> dict[str, str]:
        pbx = self._config.pbx
        known = {pbx.name: pbx.host} if pbx.type != "none" and pbx.name else {}
        if self._setup is not None:
            for end in (self._setup.primary_pbx, self._setup.secondary_pbx):
                if end is not None:
                    known[end.name] = end.host
        return known

    async def add_trunk(self, data: Mapping[str, Any], actor: str, *,
                        replace: bool = False) -> dict[str, Any]:
        data = dict(data)
        known = self._known_pbx_hosts()
        pbx = data.get("pbx")
        if pbx:
            if pbx not in known:
                raise InvalidTrunk(f"pbx: {pbx!r} is not a configured PBX (known: "
                                   f"{', '.join(sorted(known)) or 'none'})")
            if not data.get("host") and known[pbx]:
                data["host"] = known[pbx]
        mon = self._config.sip.monitor
        interval = data.get("interval", mon.interval)
        timeout = min(mon.timeout, interval) if isinstance(interval, int | float) \
            and not isinstance(interval, bool) else mon.timeout
        trunk = parse_trunk(data, {"interval": mon.interval, "timeout": timeout})
        if trunk.origin != "manual":
            raise InvalidTrunk("origin: trunks of the application setup are changed through "
                               "app_setup")
        async with self._lock:
            exists = trunk.name in self._specs
            if exists and not replace:
                raise TrunkExists(f"name: a trunk named {trunk.name!r} exists already")
            if exists and self._specs[trunk.name].origin != "manual":
                raise InvalidTrunk(f"name: {trunk.name!r} belongs to the application setup; "
                                   "change or delete the setup instead")
            if not exists and len(self._specs) >= self._config.sip.monitor.max_trunks:
                raise InvalidTrunk(f"trunks: at most {self._config.sip.monitor.max_trunks} "
                                   "trunks (sip.monitor.max_trunks)")
            await _check_ca(trunk.spec())
            async with self._store.db.transaction() as tx:
                await self._put(tx, trunk, actor, Action.EDIT if exists else Action.CREATE)
            await self._reconcile()
        self._update_status()
        return self.trunk_json(trunk.name)

    async def _put(self, tx: Transaction, trunk: TrunkInput, actor: str,
                   action: Action) -> None:
        spec = trunk.spec()
        now = time.time()
        await tx.execute(
            "INSERT INTO sip_trunks(name, spec, created_at, updated_at) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(name) DO UPDATE SET spec = excluded.spec,"
            " updated_at = excluded.updated_at", (spec.name, spec.model_dump_json(), now, now))
        changed = ["spec"]
        if trunk.password:
            await self._store.secrets.put_in(tx, _secret_name(spec.name),
                                             Secret(trunk.password))
            changed.append("password")
        elif not spec.username:
            await tx.execute("DELETE FROM secrets WHERE name = ?", (_secret_name(spec.name),))
        await self._store.history.record(tx, Event(
            actor=actor, action=action, asset=ASSET, subject=spec.name,
            properties_changed=changed,
            core={"target": spec.target, "transport": spec.transport}))
        secret = Secret(trunk.password) if trunk.password else (
            self._passwords.get(spec.name) if spec.username else None)

        def commit() -> None:
            self._specs[spec.name] = spec
            if secret is None:
                self._passwords.pop(spec.name, None)
            else:
                self._passwords[spec.name] = secret

        tx.after_commit(commit)

    async def _delete(self, tx: Transaction, name: str, actor: str) -> None:
        await tx.execute("DELETE FROM sip_trunks WHERE name = ?", (name,))
        await tx.execute("DELETE FROM secrets WHERE name = ?", (_secret_name(name),))
        await self._store.alerts.clear_in(tx, alert_code(name))
        await self._store.history.record(tx, Event(actor=actor, action=Action.DELETE,
                                                   asset=ASSET, subject=name))

        def commit() -> None:
            self._specs.pop(name, None)
            self._passwords.pop(name, None)

        tx.after_commit(commit)

    async def remove_trunk(self, name: str, actor: str) -> dict[str, Any]:
        async with self._lock:
            spec = self._specs.get(name)
            if spec is None:
                raise TrunkNotFound(f"name: no trunk named {name!r}")
            if spec.origin != "manual":
                raise InvalidTrunk(f"name: {name!r} belongs to the application setup; delete "
                                   "the setup instead")
            async with self._store.db.transaction() as tx:
                await self._delete(tx, name, actor)
            await self._reconcile()
        self._update_status()
        return {"removed": name}

    async def set_app_setup(self, data: Any, actor: str) -> dict[str, Any]:
        """Save the setup (deriving its two trunks) or, with ``None``, delete both."""
        setup = None if data is None else parse_app_setup(data)
        derived = derive_trunks(setup) if setup else []
        async with self._lock:
            for spec in derived:
                other = self._specs.get(spec.name)
                if other is not None and other.origin == "manual":
                    raise InvalidTrunk(f"app_setup: a manual trunk named {spec.name!r} "
                                       "exists; rename or remove it first")
                await _check_ca(spec)
            async with self._store.db.transaction() as tx:
                for name in (APP_SETUP_PBX_TRUNK, APP_SETUP_CLOUD_TRUNK):
                    if name in self._specs and name not in {s.name for s in derived}:
                        await self._delete(tx, name, actor)
                for spec in derived:
                    await self._put(tx, TrunkInput.model_validate(spec.model_dump()), actor,
                                    Action.EDIT if spec.name in self._specs else Action.CREATE)
                if setup is None:
                    await tx.execute("DELETE FROM sip_app_setup WHERE id = 1")
                else:
                    await tx.execute(
                        "INSERT INTO sip_app_setup(id, setup, updated_at) VALUES (1, ?, ?)"
                        " ON CONFLICT(id) DO UPDATE SET setup = excluded.setup,"
                        " updated_at = excluded.updated_at",
                        (setup.model_dump_json(), time.time()))
                await self._store.history.record(tx, Event(
                    actor=actor, action=Action.DELETE if setup is None else Action.EDIT,
                    asset="SIP Trunk Application Setup",
                    subject="" if setup is None else setup.mbg.name))

                def commit() -> None:
                    self._setup = setup

                tx.after_commit(commit)
            await self._reconcile()
        self._update_status()
        return self.listing()

    async def check(self, name: str) -> dict[str, Any]:
        running = self._running.get(name)
        if running is None:
            raise TrunkNotFound(f"name: no trunk named {name!r}")
        await running.monitor.check_now()
        return self.trunk_json(name)

    # -- router commands --------------------------------------------------------------------

    async def _cmd_get(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        return self.listing()

    async def _cmd_set(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        """Exactly one of ``trunk`` (+ ``replace``), ``remove`` or ``app_setup``."""
        ops = [k for k in ("trunk", "remove", "app_setup") if k in params]
        unknown = sorted(set(params) - {"trunk", "remove", "app_setup", "replace"})
        if len(ops) != 1 or unknown:
            raise InvalidTrunk("params: give exactly one of trunk, remove, app_setup"
                               + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
        if ops[0] == "trunk":
            replace = params.get("replace", False)
            if not isinstance(replace, bool):
                raise InvalidTrunk("replace: must be true or false")
            if not isinstance(params["trunk"], Mapping):
                raise InvalidTrunk("trunk: must be an object")
            return await self.add_trunk(params["trunk"], ctx.actor, replace=replace)
        if ops[0] == "remove":
            return await self.remove_trunk(_name(params, "remove"), ctx.actor)
        return await self.set_app_setup(params["app_setup"], ctx.actor)

    async def _cmd_check(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        return await self.check(_name(params, "name"))

    async def _cmd_guidance(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        name = _name(params, "name")
        spec = self._specs.get(name)
        if spec is None:
            raise TrunkNotFound(f"name: no trunk named {name!r}")
        return guidance(spec, self._config)


def _name(params: Mapping[str, Any], key: str) -> str:
    value = params.get(key)
    if not isinstance(value, str) or not value:
        raise InvalidTrunk(f"{key}: must be a trunk name")
    return value


def _reveal(secret: Secret | None) -> str | None:
    return None if secret is None else secret.reveal()


async def _check_ca(spec: TrunkSpec) -> None:
    """A configured CA bundle must exist and hold PEM certificates (read in a thread)."""
    if spec.ca_file is None:
        return
    try:
        await asyncio.to_thread(ssl.create_default_context, cafile=str(spec.ca_file))
    except (OSError, ssl.SSLError) as err:
        raise InvalidTrunk(f"ca_file: cannot use {spec.ca_file} as a CA bundle: "
                           f"{getattr(err, 'strerror', None) or err}") from None

