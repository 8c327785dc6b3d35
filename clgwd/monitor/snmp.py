"""Everything SNMP, behind one module: the agent (responder), notifications and the poller.

pysnmp (7.x) is imported only here, and only when a function that needs it runs (not at
daemon import). The rest of clgwd speaks in plain Python values:

- the agent answers from a snapshot of ``(oid, Value)`` pairs that its owner builds on
  demand (``SnapshotSource``); GET, GETNEXT and GETBULK (bounded) are answered from it,
  so the data of one answer is consistent and costs one sorted-list lookup per varbind;
- ``send_notification`` sends a v2c trap or a v3 inform to one manager;
- ``poll_platform`` reads a LAN host's system group, hrStorage and hrSWInstalled.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from clgwd.config.monitor import SnmpUser, split_host_port
from clgwd.config.secret import Secret

_LOGGER = logging.getLogger(__name__)

Oid = tuple[int, ...]
ValueKind = Literal["str", "int", "gauge", "counter", "ticks", "oid"]

ENTERPRISE: Final[Oid] = (1, 3, 6, 1, 4, 1, 99999)
"""PLACEHOLDER enterprise number (docs/monitoring.md): clgwd has no IANA Private
Enterprise Number yet; every OID below moves when one is registered."""
CLGWD_MIB: Final[Oid] = (*ENTERPRISE, 1)
CLGWD_OBJECTS: Final[Oid] = (*CLGWD_MIB, 1)
CLGWD_NOTIFICATIONS: Final[Oid] = (*CLGWD_MIB, 2, 0)
SYSTEM: Final[Oid] = (1, 3, 6, 1, 2, 1, 1)
MITEL_ENTERPRISE: Final[Oid] = (1, 3, 6, 1, 4, 1, 1027)
SNMP_TRAP_OID: Final[Oid] = (1, 3, 6, 1, 6, 3, 1, 1, 4, 1, 0)
SYS_UPTIME_0: Final[Oid] = (*SYSTEM, 3, 0)

_HR_STORAGE: Final[Oid] = (1, 3, 6, 1, 2, 1, 25, 2, 3, 1)
_HR_SW_INSTALLED_NAME: Final[Oid] = (1, 3, 6, 1, 2, 1, 25, 6, 3, 1, 2)
MAX_SOFTWARE: Final = 200
"""hrSWInstalled entries kept per platform (a Linux host lists every package)."""
MAX_STORAGE: Final = 64


@dataclass(frozen=True, slots=True)
class Value:
    """One typed SNMP value, independent of pysnmp."""

    kind: ValueKind
    value: str | int | Oid


def text(value: str) -> Value:
    return Value("str", value)


def integer(value: int) -> Value:
    return Value("int", value)


def gauge(value: int) -> Value:
    return Value("gauge", max(0, min(int(value), 2**32 - 1)))


def counter(value: int) -> Value:
    return Value("counter", int(value) % 2**32)


def ticks(seconds: float) -> Value:
    return Value("ticks", int(seconds * 100) % 2**32)


def object_id(value: Oid) -> Value:
    return Value("oid", value)


SnapshotSource = Callable[[], Sequence[tuple[Oid, Value]]]
"""Returns the agent's objects; called at most once per ``SNAPSHOT_TTL`` seconds."""
SNAPSHOT_TTL: Final = 0.5
AGENT_TIMER_RESOLUTION: Final = 1.0
NOTIFIER_TIMER_RESOLUTION: Final = 0.5


def _to_pysnmp(value: Value) -> Any:
    from pysnmp.proto import rfc1902  # noqa: PLC0415 - pysnmp loads when SNMP starts

    if value.kind == "str":
        assert isinstance(value.value, str)
        return rfc1902.OctetString(value.value.encode("utf-8"))
    if value.kind == "int":
        return rfc1902.Integer32(value.value)
    if value.kind == "gauge":
        return rfc1902.Gauge32(value.value)
    if value.kind == "counter":
        return rfc1902.Counter32(value.value)
    if value.kind == "ticks":
        return rfc1902.TimeTicks(value.value)
    return rfc1902.ObjectName(value.value)


class _Snapshot:
    """Sorted OIDs and their pysnmp values, rebuilt when older than ``SNAPSHOT_TTL``."""

    def __init__(self, source: SnapshotSource) -> None:
        self._source = source
        self._built = -1.0
        self.oids: list[Oid] = []
        self.values: list[Any] = []
        self.index: dict[Oid, int] = {}

    def refresh(self) -> None:
        now = time.monotonic()
        if now - self._built < SNAPSHOT_TTL:
            return
        pairs = sorted(self._source(), key=lambda pair: pair[0])
        self.oids = [oid for oid, _ in pairs]
        self.values = [_to_pysnmp(value) for _, value in pairs]
        self.index = {oid: i for i, oid in enumerate(self.oids)}
        self._built = now


def _object_known(oids: list[Oid], oid: Oid) -> bool:
    """True when ``oid`` names an instance of an object we serve (another index)."""
    parent = oid[:-1]
    pos = bisect.bisect_left(oids, parent)
    return pos < len(oids) and oids[pos][:len(parent)] == parent and len(parent) > 7


def _instrum_class() -> type:
    """A pysnmp MIB instrumentation controller that answers from a ``_Snapshot``."""
    from pysnmp.proto import rfc1905  # noqa: PLC0415
    from pysnmp.smi.instrum import AbstractMibInstrumController  # noqa: PLC0415

    class SnapshotInstrum(AbstractMibInstrumController):  # type: ignore[misc]
        def __init__(self, snapshot: _Snapshot) -> None:
            self._snapshot = snapshot

        def _allowed(self, oid: Oid, value: Any, context: dict[str, Any]) -> bool:
            ac = context.get("acFun")
            # acFun raises for an unknown group/context; returns True when not in view.
            return ac is None or not ac("read", (oid, value), **context)

        def read_variables(self, *var_binds: Any, **context: Any) -> list[Any]:
            snap = self._snapshot
            snap.refresh()
            out = []
            for idx, (name, _) in enumerate(var_binds):
                context["idx"] = idx
                oid = tuple(name)
                pos = snap.index.get(oid)
                if pos is not None and self._allowed(oid, snap.values[pos], context):
                    out.append((name, snap.values[pos]))
                else:
                    out.append((name, rfc1905.noSuchInstance if _object_known(snap.oids, oid)
                                else rfc1905.noSuchObject))
            return out

        def read_next_variables(self, *var_binds: Any, **context: Any) -> list[Any]:
            snap = self._snapshot
            snap.refresh()
            out = []
            for idx, (name, _) in enumerate(var_binds):
                context["idx"] = idx
                pos = bisect.bisect_right(snap.oids, tuple(name))
                while pos < len(snap.oids) and not self._allowed(
                        snap.oids[pos], snap.values[pos], context):
                    pos += 1
                if pos < len(snap.oids):
                    out.append((snap.oids[pos], snap.values[pos]))
                else:
                    out.append((name, rfc1905.endOfMibView))
            return out

    return SnapshotInstrum


def _bulk_class() -> type:
    """GETBULK bounded by ``max_varbinds`` that stops after a repetition that reached the
    end of the MIB view (RFC 3416 4.2.3 allows it) instead of repeating endOfMibView."""
    from pysnmp.entity.rfc3413 import cmdrsp  # noqa: PLC0415
    from pysnmp.proto import rfc1905  # noqa: PLC0415
    from pysnmp.proto.api import v2c  # noqa: PLC0415
    from pysnmp.smi import error as smi_error  # noqa: PLC0415

    class BoundedBulkResponder(cmdrsp.BulkCommandResponder):  # type: ignore[misc]
        def handle_management_operation(self, snmp_engine: Any, state_reference: Any,
                                        context_name: Any, pdu: Any) -> None:
            non_repeaters = max(int(v2c.apiBulkPDU.get_non_repeaters(pdu)), 0)
            repetitions = max(int(v2c.apiBulkPDU.get_max_repetitions(pdu)), 0)
            request = v2c.apiPDU.get_varbinds(pdu)
            n = min(non_repeaters, len(request))
            r = max(len(request) - n, 0)
            if r:
                repetitions = min(repetitions, max(self.max_varbinds - n, 0) // r)
            read_next = self.snmpContext.get_mib_instrum(context_name).read_next_variables
            context = {"snmpEngine": snmp_engine, "acFun": self.verify_access,
                       "cbCtx": self.cbCtx}
            answer = list(read_next(*request[:n], **context)) if n else []
            binds = request[n:]
            while repetitions and r:
                step = read_next(*binds, **context)
                answer.extend(step)
                if all(value is rfc1905.endOfMibView for _, value in step):
                    break
                binds = step
                repetitions -= 1
            if not answer:
                raise smi_error.SmiError
            self.send_varbinds(snmp_engine, state_reference, 0, 0, answer)
            self.release_state_information(state_reference)

    return BoundedBulkResponder


_AUTH_PROTOCOLS: Final = {"sha224": "USM_AUTH_HMAC128_SHA224",
                          "sha256": "USM_AUTH_HMAC192_SHA256",
                          "sha384": "USM_AUTH_HMAC256_SHA384",
                          "sha512": "USM_AUTH_HMAC384_SHA512"}
_PRIV_PROTOCOLS: Final = {"aes128": "USM_PRIV_CFB128_AES", "aes192": "USM_PRIV_CFB192_AES",
                          "aes256": "USM_PRIV_CFB256_AES"}
_FAILURE_COUNTERS: Final = (("__SNMPv2-MIB", "snmpInBadCommunityNames"),
                            ("__SNMP-USER-BASED-SM-MIB", "usmStatsUnknownUserNames"),
                            ("__SNMP-USER-BASED-SM-MIB", "usmStatsWrongDigests"),
                            ("__SNMP-USER-BASED-SM-MIB", "usmStatsDecryptionErrors"))


class SnmpAgent:
    """A read-only SNMP responder in the running event loop.

    ``community`` enables v2c (read-only), ``users`` v3 authPriv; both see the whole
    snapshot. ``max_repetitions`` bounds the varbinds of one GETBULK answer.
    """

    def __init__(self, listen: Sequence[str], source: SnapshotSource, *,
                 community: Secret | None, users: Sequence[SnmpUser],
                 max_repetitions: int) -> None:
        self._listen = [split_host_port(item) for item in listen]
        self._snapshot = _Snapshot(source)
        self._community = community
        self._users = list(users)
        self._max_repetitions = max_repetitions
        self._engine: Any = None
        self._counters: list[Any] = []
        self.bound: list[tuple[str, int]] = []

    def _configure(self) -> Any:
        """Engine, users, views and responders: blocking (pysnmp reads its MIB modules
        from disk), so this runs in a worker thread; the sockets are bound on the loop."""
        from pysnmp.entity import config, engine  # noqa: PLC0415
        from pysnmp.entity.rfc3413 import cmdrsp, context  # noqa: PLC0415

        eng = engine.SnmpEngine()
        if self._community is not None:
            config.add_v1_system(eng, "clgwd-ro", self._community.reveal())
            config.add_vacm_user(eng, 2, "clgwd-ro", "noAuthNoPriv", (1, 3, 6, 1))
        for user in self._users:
            config.add_v3_user(
                eng, user.name, getattr(config, _AUTH_PROTOCOLS[user.auth_protocol]),
                user.auth_key.reveal(), getattr(config, _PRIV_PROTOCOLS[user.priv_protocol]),
                user.priv_key.reveal())
            config.add_vacm_user(eng, 3, user.name, "authPriv", (1, 3, 6, 1))
        ctx = context.SnmpContext(eng)
        ctx.context_names[b""] = _instrum_class()(self._snapshot)
        cmdrsp.GetCommandResponder(eng, ctx)
        cmdrsp.NextCommandResponder(eng, ctx)
        bulk = _bulk_class()(eng, ctx)
        bulk.max_varbinds = self._max_repetitions
        cmdrsp.SetCommandResponder(eng, ctx)  # answers SETs with an error, not silence
        builder = eng.get_mib_builder()
        self._counters = [builder.import_symbols(module, name)[0]
                          for module, name in _FAILURE_COUNTERS]
        return eng

    async def start(self) -> None:
        """Bind every listen address (raises ``OSError`` naming the one that failed)."""
        from pysnmp.carrier.asyncio.dgram import udp, udp6  # noqa: PLC0415
        from pysnmp.entity import config  # noqa: PLC0415

        eng = await asyncio.to_thread(self._configure)
        self._engine = eng
        try:
            for n, (host, port) in enumerate(self._listen):
                v6 = ":" in host
                transport = (udp6.Udp6Transport() if v6 else udp.UdpTransport()
                             ).open_server_mode((host, port))
                domain = (udp6.DOMAIN_NAME if v6 else udp.DOMAIN_NAME) + (n + 1,)
                config.add_transport(eng, domain, transport)
                # The bind is a future inside pysnmp: wait for it so READY is the truth.
                await transport._lport
                # pysnmp ticks its timers every 0.1 s; a responder only needs them for
                # cache expiry: one tick a second keeps the idle agent near zero CPU.
                eng.transport_dispatcher.set_timer_resolution(AGENT_TIMER_RESOLUTION)
                sock = transport.transport.get_extra_info("sockname")
                self.bound.append((sock[0], sock[1]))
        except BaseException:
            self.close()
            raise
        _LOGGER.info("SNMP agent listening on %s", ", ".join(
            f"{h}:{p}" for h, p in self.bound))

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None

    def auth_failures(self) -> int:
        """Requests refused for a wrong community, unknown user, wrong key or digest."""
        return sum(int(symbol.syntax) for symbol in self._counters)


@dataclass(frozen=True)
class NotificationTarget:
    """A manager: a v2c trap with ``community`` or a v3 inform as ``user``."""

    address: str
    community: Secret | None = None
    user: SnmpUser | None = None


def _auth_data(community: Secret | None, user: SnmpUser | None) -> Any:
    from pysnmp.entity import config  # noqa: PLC0415
    from pysnmp.hlapi.v3arch.asyncio import CommunityData, UsmUserData  # noqa: PLC0415

    if community is not None:
        return CommunityData(community.reveal(), mpModel=1)  # noqa: S508 - v2c is opt-in
    assert user is not None
    return UsmUserData(user.name, user.auth_key.reveal(), user.priv_key.reveal(),
                       authProtocol=getattr(config, _AUTH_PROTOCOLS[user.auth_protocol]),
                       privProtocol=getattr(config, _PRIV_PROTOCOLS[user.priv_protocol]))


async def _target(address: str, wait: float, retries: int) -> Any:
    from pysnmp.hlapi.v3arch.asyncio import (  # noqa: PLC0415
        Udp6TransportTarget,
        UdpTransportTarget,
    )

    host, port = split_host_port(address)
    cls = Udp6TransportTarget if ":" in host else UdpTransportTarget
    return await cls.create((host, port), timeout=wait, retries=retries)


_MANAGER_MODULES: Final = (
    # What pysnmp's high-level API loads on first use (targets, notifications, the
    # var-bind MIB lookups); loaded up front in the worker thread that makes the engine.
    "SNMPv2-SMI", "SNMPv2-TC", "SNMPv2-CONF", "SNMPv2-MIB", "SNMPv2-TM", "SNMP-FRAMEWORK-MIB",
    "SNMP-TARGET-MIB", "SNMP-NOTIFICATION-MIB", "SNMP-COMMUNITY-MIB",
    "SNMP-VIEW-BASED-ACM-MIB", "SNMP-USER-BASED-SM-MIB", "PYSNMP-USM-MIB",
    "TRANSPORT-ADDRESS-MIB", "INET-ADDRESS-MIB", "PYSNMP-SOURCE-MIB", "__PYSNMP-USM-MIB",
    "__SNMP-FRAMEWORK-MIB", "__SNMP-MPD-MIB", "__SNMP-TARGET-MIB", "__SNMP-USER-BASED-SM-MIB",
    "__SNMP-VIEW-BASED-ACM-MIB", "__SNMPv2-MIB")


def _manager_engine() -> Any:
    """A manager-side engine with its MIB modules loaded (blocking: disk reads)."""
    from pysnmp.hlapi.v3arch.asyncio import SnmpEngine  # noqa: PLC0415

    engine = SnmpEngine()
    engine.get_mib_builder().load_modules(*_MANAGER_MODULES)
    return engine


class Notifier:
    """Sends notifications from one engine of its own (not the agent's)."""

    def __init__(self) -> None:
        self._engine: Any = None

    async def send(self, target: NotificationTarget, notification: Oid,
                   var_binds: Sequence[tuple[Oid, Value]], uptime: float) -> str | None:
        """Send a v2c trap or v3 inform; returns an error text, or None when sent."""
        from pysnmp.hlapi.v3arch.asyncio import (  # noqa: PLC0415
            ContextData,
            NotificationType,
            ObjectIdentity,
            send_notification,
        )

        if self._engine is None:
            self._engine = await asyncio.to_thread(_manager_engine)
        kind = "trap" if target.community is not None else "inform"
        binds = [(SYS_UPTIME_0, _to_pysnmp(ticks(uptime))),
                 *((oid, _to_pysnmp(value)) for oid, value in var_binds)]
        error, status, _, _ = await send_notification(
            self._engine, _auth_data(target.community, target.user),
            await _target(target.address, 2.0, 1), ContextData(), kind,
            NotificationType(ObjectIdentity(notification)).add_varbinds(*binds))
        dispatcher = self._engine.transport_dispatcher
        if dispatcher is not None:  # retries need no finer clock than this
            dispatcher.set_timer_resolution(NOTIFIER_TIMER_RESOLUTION)
        if error:
            return str(error)
        if status:
            return str(status.prettyPrint())
        return None

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None


@dataclass
class PlatformReport:
    """What one LAN platform answered (or why it did not)."""

    reachable: bool
    error: str = ""
    sys_descr: str = ""
    sys_name: str = ""
    sys_object_id: str = ""
    uptime_seconds: float | None = None
    storage: list[dict[str, Any]] = field(default_factory=list)
    software: list[str] = field(default_factory=list)
    software_truncated: bool = False

    @property
    def mitel(self) -> bool:
        prefix = ".".join(str(n) for n in MITEL_ENTERPRISE) + "."
        return self.sys_object_id.startswith(prefix)


def _printable(value: Any) -> str:
    raw = value.asOctets() if hasattr(value, "asOctets") else str(value).encode()
    return str(raw.decode("utf-8", "replace"))


class Poller:
    """Polls LAN platforms with one manager engine (made once, in a worker thread)."""

    def __init__(self) -> None:
        self._engine: Any = None
        self._lock = asyncio.Lock()

    async def _get_engine(self) -> Any:
        async with self._lock:
            if self._engine is None:
                self._engine = await asyncio.to_thread(_manager_engine)
            return self._engine

    def close(self) -> None:
        if self._engine is not None:
            self._engine.close_dispatcher()
            self._engine = None

    async def poll(self, address: str, *, community: Secret | None, user: SnmpUser | None,
                   wait: float) -> PlatformReport:
        """Read the system group, hrStorage and hrSWInstalled of one host (never raises
        for what the host does: an unreachable or garbled host is a report saying so)."""
        try:
            return await self._poll(await self._get_engine(), address, community, user, wait)
        except Exception as err:  # the host is untrusted input: report, do not crash
            _LOGGER.debug("SNMP poll of %s failed", address, exc_info=True)
            return PlatformReport(False, f"{type(err).__name__}: {err}")

    @staticmethod
    async def _poll(eng: Any, address: str, community: Secret | None, user: SnmpUser | None,
                    wait: float) -> PlatformReport:
        from pysnmp.hlapi.v3arch.asyncio import (  # noqa: PLC0415
            ContextData,
            ObjectIdentity,
            ObjectType,
            bulk_walk_cmd,
            get_cmd,
        )

        auth = _auth_data(community, user)
        target = await _target(address, wait, 1)
        error, status, _, binds = await get_cmd(
            eng, auth, target, ContextData(),
            *(ObjectType(ObjectIdentity((*SYSTEM, n, 0))) for n in (1, 2, 3, 5)))
        if error or status:
            return PlatformReport(False, str(error or status.prettyPrint()))
        values = [b[1] for b in binds]
        report = PlatformReport(True)
        try:
            report.sys_descr = _printable(values[0])[:255]
            report.sys_object_id = ".".join(str(n) for n in tuple(values[1]))
            report.uptime_seconds = int(values[2]) / 100
            report.sys_name = _printable(values[3])[:255]
        except Exception as err:  # noSuchObject, wrong types: the host's answer is unusable
            return PlatformReport(False, f"the host answered unusable system values ({err})")
        storage_rows = await _walk_table(bulk_walk_cmd, eng, auth, target, entry=_HR_STORAGE,
                                         columns=(3, 4, 5, 6), max_rows=MAX_STORAGE)
        report.storage = _storage(storage_rows)
        names = await _walk_table(bulk_walk_cmd, eng, auth, target,
                                  entry=_HR_SW_INSTALLED_NAME[:-1], columns=(2,),
                                  max_rows=MAX_SOFTWARE + 1)
        report.software = [_printable(row[2]) for row in names.values()][:MAX_SOFTWARE]
        report.software_truncated = len(names) > MAX_SOFTWARE
        return report


async def poll_platform(address: str, *, community: Secret | None, user: SnmpUser | None,
                        wait: float) -> PlatformReport:
    """``Poller.poll`` with an engine of its own (one-off polls, tests)."""
    poller = Poller()
    try:
        return await poller.poll(address, community=community, user=user, wait=wait)
    finally:
        poller.close()


async def _walk_table(bulk_walk_cmd: Any, eng: Any, auth: Any, target: Any, *, entry: Oid,
                      columns: Iterable[int], max_rows: int) -> dict[Oid, dict[int, Any]]:
    """Rows of a table (index -> {column: value}); empty when the host lacks it."""
    from pysnmp.hlapi.v3arch.asyncio import ContextData, ObjectIdentity, ObjectType  # noqa: PLC0415

    rows: dict[Oid, dict[int, Any]] = {}
    for column in columns:
        base = (*entry, column)
        count = 0
        async for error, status, _, binds in bulk_walk_cmd(
                eng, auth, target, ContextData(), 0, 25,
                ObjectType(ObjectIdentity(base)), lexicographicMode=False):
            if error or status:
                break
            for name, value in binds:
                oid = tuple(name)
                if oid[:len(base)] != base:
                    continue
                rows.setdefault(oid[len(base):], {})[column] = value
                count += 1
            if count >= max_rows:
                break
    return rows


def _storage(rows: dict[Oid, dict[int, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows.values():
        try:
            unit = int(row.get(4, 0))
            out.append({"description": _printable(row.get(3, b"")), "capacity_bytes":
                        int(row.get(5, 0)) * unit, "used_bytes": int(row.get(6, 0)) * unit})
        except Exception:  # noqa: S112 - a row with unusable values is left out
            continue
    return out[:MAX_STORAGE]
