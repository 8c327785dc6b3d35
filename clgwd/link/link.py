"""The cloud link component: one supervised websocket to the cloud control plane.

The supervisor is an explicit state machine (``LinkState``). It waits until the gateway
is configured and enrolled, connects with mutual TLS to the pinned CA, says ``hello``,
then runs the outbox delivery and certificate renewal for that connection until it
closes or the cloud sends ``goaway``. Failures back off with full jitter; 401/403 and an
expired certificate stop retrying and raise an alert until the gateway is re-enrolled.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import Any, Final, Self
from urllib.parse import urlsplit

from clgwd import __version__
from clgwd.channel import BinaryEndpoint, LinkDown
from clgwd.commands import (
    CLOUD_ACTOR,
    CallerRefused,
    CommandContext,
    CommandRouter,
    UnknownCommand,
    check_caller,
)
from clgwd.component import ComponentState, ComponentStatus, StatusTracker
from clgwd.config import ClgwdConfig, Secret
from clgwd.config.cloud import CloudConfig
from clgwd.errors import ClgwdError, NotSupportedYet
from clgwd.link import protocol as p
from clgwd.link.backends import opener
from clgwd.link.backoff import Backoff
from clgwd.link.enroll import enroll
from clgwd.link.idempotency import IdempotencyStore
from clgwd.link.identity import Enrollment, IdentityError, IdentityFiles
from clgwd.link.local import CloudNotConfigured, enroll_params, status_view
from clgwd.link.proxy import ProxySettings, open_link
from clgwd.link.session import RpcFailed, Session, Tap
from clgwd.link.wsapi import ConnectFailed, HandshakeRejected, WsSettings
from clgwd.metrics import Metrics
from clgwd.store import OutboxFullError, Severity, Store
from clgwd.store.outbox import NEAR_FULL_RATIO
from clgwd.tasks import wait_at_most

_LOGGER = logging.getLogger(__name__)

IDENTITY_RECHECK: Final = 5.0
"""Idle re-read of the identity files, only for changes no wake-up announces (a
``clgwd enroll`` run while the daemon was not reachable, files restored by hand)."""
OUTBOX_CHECK_INTERVAL: Final = 5.0
SHUTDOWN_CLOSE_TIMEOUT: Final = 2.0
CLOSE_TIMEOUT: Final = 5.0
"""Longest wait for the peer's close frame; a dead peer costs missed pongs + this."""
IDLE_PUSH_WAIT: Final = 5.0
PUSH_PAYLOAD_BUDGET: Final = p.MAX_MESSAGE_BYTES // 2
"""Payload bytes per ``event.push``: half the cloud's message limit leaves room for the
envelope and for JSON that grows when re-encoded (escapes, spacing)."""
CLOCK_SKEW_LIMIT: Final = 300.0
RENEW_RETRY: Final = 60.0
DROP_FIRST_ATTEMPT: Final = 2
"""After an established connection drops, the first retry window is base * 2**2 (4 s):
a cloud restart drops the whole fleet at the same instant, and a 1-s window would put
every gateway's first retry into the same second."""
EPOCH_SETTING: Final = "link.outbox_epoch"
ALERT_AUTH: Final = "cloud_auth_failed"
ALERT_TLS: Final = "cloud_tls_untrusted"
ALERT_CERT: Final = "cloud_cert_invalid"
ALERT_CLOCK: Final = "cloud_clock_skew"
ALERT_OUTBOX: Final = "outbox_near_full"

StatusSource = Callable[[], Mapping[str, ComponentStatus]]


class LinkState(StrEnum):
    """Where the link is; changed only by ``CloudLink._set_state``."""

    NOT_CONFIGURED = "not_configured"
    NOT_ENROLLED = "not_enrolled"
    CONNECTING = "connecting"
    ONLINE = "online"
    BACKOFF = "backoff"
    AUTH_FAILED = "auth_failed"
    STOPPED = "stopped"


_COMPONENT_STATE: Final = {
    LinkState.NOT_CONFIGURED: ComponentState.RUNNING,
    LinkState.NOT_ENROLLED: ComponentState.RUNNING,
    LinkState.CONNECTING: ComponentState.STARTING,
    LinkState.ONLINE: ComponentState.RUNNING,
    LinkState.BACKOFF: ComponentState.DEGRADED,
    LinkState.AUTH_FAILED: ComponentState.DEGRADED,
    LinkState.STOPPED: ComponentState.STOPPED,
}


class _AuthBlocked(Exception):
    """The cloud will not accept this identity; wait for re-enrollment."""


def ws_url(cloud_url: str) -> str:
    """``https://host:port`` -> ``wss://host:port/v1/gateway``."""
    parts = urlsplit(cloud_url)
    return f"wss://{parts.netloc}{p.GATEWAY_PATH}"


class CloudLink:
    """Component ``link``: the outbound websocket, enrollment and outbox delivery."""

    name = "link"

    def __init__(self, config: ClgwdConfig, store: Store, commands: CommandRouter,
                 statuses: StatusSource, metrics: Metrics | None = None) -> None:
        self._config = config
        self._store = store
        self._commands = commands
        self._statuses = statuses
        self.tracker = StatusTracker(self.name)
        self.state = LinkState.STOPPED
        self.files = IdentityFiles(config.state.dir)
        self._idempotency = IdempotencyStore(store.db)
        self._backoff = Backoff(config.cloud.backoff_base, config.cloud.backoff_cap)
        self._endpoint: BinaryEndpoint | None = None
        self._current: Session | None = None
        self._sessions: set[Session] = set()
        self._tg: asyncio.TaskGroup | None = None
        self._wake = asyncio.Event()
        self._identity_changed = asyncio.Event()
        """Set by enrollment and config changes; cleared before the identity is read, so
        a change that lands during the read is never lost (``_wait_for_identity``)."""
        self._blocked_fingerprint: tuple[float, ...] | None = None
        self._failures = 0
        self._renewal_plan: tuple[dt.datetime | None, dt.datetime] = (
            None, dt.datetime.now(dt.UTC))
        self.gateway_id: str | None = None
        self.last_error = ""
        self.tap: Tap | None = None
        self.on_attempt: Callable[[], None] | None = None
        self.identity_listeners: list[Callable[[Enrollment], None]] = []
        """Told the enrollment in use before every connection attempt (the daemon wires
        the tunnel component here: gateway id and tunnel-authority key)."""
        self._metrics(metrics or Metrics())
        self.proxy = ProxySettings(config.cloud, store)
        self.proxy.register(commands)
        commands.register("status.report", self._status_report, mutating=False)
        commands.register("cloud.status", self._cmd_cloud_status, mutating=False)
        commands.register("cloud.enroll", self._cmd_cloud_enroll, mutating=True)

    def _metrics(self, metrics: Metrics) -> None:
        self._m_connects = metrics.counter("clgwd_link_connect_attempts_total",
                                           "Cloud connection attempts by result", ["result"])
        self._m_records = metrics.counter("clgwd_link_records_delivered_total",
                                          "Outbox records acknowledged by the cloud")
        self._m_online = metrics.gauge("clgwd_link_online", "1 while the cloud link is up")
        self._m_depth = metrics.gauge("clgwd_link_outbox_depth", "Undelivered outbox records")

    # -- component lifecycle ----------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            self.gateway_id = await asyncio.to_thread(self.files.ensure_key_and_id)
        except IdentityError as err:
            # A damaged identity must not stop the gateway's LAN functions; the
            # supervisor shows it as an alert and waits for re-enrollment.
            _LOGGER.error("Cloud identity unusable: %s", err.message)  # noqa: TRY400
        self._set_state(LinkState.CONNECTING, "starting")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Say goodbye (1001) on every socket still open, bounded, then stop."""
        for session in list(self._sessions):
            try:
                async with asyncio.timeout(SHUTDOWN_CLOSE_TIMEOUT):
                    await session.close(1001, "gateway shutting down")
            except TimeoutError:
                _LOGGER.debug("%s: close handshake timed out at shutdown", session.label)
        self._sessions.clear()
        self._set_state(LinkState.STOPPED)

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            tg.create_task(self._supervise(), name="clgwd[link].supervise")
            tg.create_task(self._status_loop(), name="clgwd[link].status")

    async def apply_config(self, config: ClgwdConfig) -> None:
        old = self._config.cloud
        self._config = config
        self.proxy.cloud = config.cloud
        self._backoff.base = config.cloud.backoff_base
        self._backoff.cap = config.cloud.backoff_cap
        if old.url != config.cloud.url:
            self._blocked_fingerprint = None
            if self._current is not None:
                await self._current.close(1000, "cloud url changed")
        self.identity_changed()

    # -- API for other components ------------------------------------------------------------

    def identity_changed(self) -> None:
        """Wake the idle supervisor now: the enrollment or the cloud URL changed."""
        self._identity_changed.set()
        self._wake.set()

    def set_binary_endpoint(self, endpoint: BinaryEndpoint) -> None:
        """Register the tunnel mux (before ``run``); every connection from then on calls
        ``on_link_up`` before its first ``on_binary``. A connection that was already up
        keeps dropping binary frames until the next reconnect."""
        self._endpoint = endpoint

    async def enroll(self, account_id: str, token: Secret) -> Enrollment:
        """Enroll with ``cloud.url`` (onboarding page); the link connects right after."""
        cloud = self._config.cloud
        if cloud.url is None:
            raise CloudNotConfigured("cloud.url is not set in the gateway's config file; set "
                                     "it before enrolling")
        enrollment = await enroll(self._config.state.dir, cloud.url, account_id, token,
                                  cloud.enrollment_ca_file, proxy=await self.proxy.effective())
        self._blocked_fingerprint = None
        if self.state in (LinkState.NOT_ENROLLED, LinkState.AUTH_FAILED):
            self._set_state(LinkState.CONNECTING, f"enrolled; connecting to {cloud.url}")
        self.identity_changed()
        return enrollment

    async def cloud_status(self) -> dict[str, Any]:
        """``cloud.status`` (docs/api.md): enrolled?, account, link state and why."""
        enrollment = await self._load_enrollment()
        alerts = {a.code: a.message for a in await self._store.alerts.active()}
        alert = next((alerts[c] for c in (ALERT_AUTH, ALERT_CERT, ALERT_TLS) if c in alerts),
                     None)
        current = self.tracker.current
        return status_view(state=self.state.value, enrollment=enrollment,
                           cloud_url=self._config.cloud.url, since=current.since,
                           message=current.message, alert=alert)

    def info(self) -> dict[str, Any]:
        """What the status page shows about the link."""
        return {"state": self.state.value, "gateway_id": self.gateway_id,
                "last_error": self.last_error, "failures": self._failures}

    # -- state --------------------------------------------------------------------------------

    def _set_state(self, state: LinkState, message: str = "") -> None:
        if state != self.state:
            _LOGGER.debug("Cloud link %s -> %s", self.state.value, state.value)
        self.state = state
        component_state = _COMPONENT_STATE[state]
        if state == LinkState.CONNECTING and self._failures:
            component_state = ComponentState.DEGRADED
        self.tracker.set(component_state, message or state.value.replace("_", " "),
                         link_state=state.value, gateway_id=self.gateway_id)
        self._m_online.set(1 if state == LinkState.ONLINE else 0)

    # -- supervisor ---------------------------------------------------------------------------

    async def _supervise(self) -> None:
        while True:
            enrollment = await self._wait_for_identity()
            try:
                await self._attempt(enrollment)
            except _AuthBlocked as err:
                await self._block(str(err))

    async def _wait_for_identity(self) -> Enrollment:
        """Idle until there is a cloud URL and a usable, unblocked enrollment.

        Event-driven: enrollment and config changes call ``identity_changed``. The event
        is cleared before reading, so a change made while the files are being read
        makes the loop read again at once instead of waiting for the slow re-check.
        """
        while True:
            self._identity_changed.clear()
            cloud = self._config.cloud
            fingerprint = await asyncio.to_thread(self.files.fingerprint)
            enrollment = await self._load_enrollment()
            if cloud.url is None:
                self._set_state(LinkState.NOT_CONFIGURED, "idle: cloud.url is not set")
            elif enrollment is None:
                self._set_state(LinkState.NOT_ENROLLED,
                                "idle: not enrolled (clgwd enroll or the onboarding page)")
            elif enrollment.cloud_url != cloud.url:
                self._set_state(LinkState.NOT_ENROLLED,
                                f"idle: enrolled with {enrollment.cloud_url}, but cloud.url "
                                f"is {cloud.url}; enroll again")
            elif fingerprint != self._blocked_fingerprint:
                self._blocked_fingerprint = None
                if await self._certificate_usable(enrollment, fingerprint):
                    return enrollment
            await self._identity_change(IDENTITY_RECHECK)

    async def _load_enrollment(self) -> Enrollment | None:
        try:
            return await asyncio.to_thread(self.files.load)
        except IdentityError as err:
            await self._alert(ALERT_CERT, Severity.CRITICAL, err.message)
        except OSError as err:
            await self._alert(ALERT_CERT, Severity.CRITICAL,
                              f"cannot read {self.files.dir}: {err.strerror}")
        return None

    async def _certificate_usable(self, enrollment: Enrollment,
                                  fingerprint: tuple[float, ...]) -> bool:
        now = dt.datetime.now(dt.UTC)
        if now >= enrollment.not_after:
            expired = enrollment.not_after.strftime("%Y-%m-%d %H:%M:%S")
            await self._block(f"client certificate expired at {expired} UTC; enroll the "
                              "gateway again", fingerprint, alert=ALERT_CERT)
            return False
        if now < enrollment.not_before:
            start = enrollment.not_before.strftime("%Y-%m-%d %H:%M:%S")
            await self._alert(ALERT_CLOCK, Severity.WARNING,
                              f"client certificate is valid only from {start} UTC; "
                              "is the gateway clock behind?")
            await self._back_off("gateway clock is behind the certificate's start")
            return False
        return True

    async def _block(self, reason: str, fingerprint: tuple[float, ...] | None = None,
                     alert: str = ALERT_AUTH) -> None:
        """Stop retrying until the identity files or the config change."""
        self._blocked_fingerprint = fingerprint or await asyncio.to_thread(
            self.files.fingerprint)
        self.last_error = reason
        _LOGGER.error("Cloud link stopped retrying: %s", reason)
        await self._alert(alert, Severity.CRITICAL, reason)
        self._set_state(LinkState.AUTH_FAILED, f"stopped: {reason}")

    async def _attempt(self, enrollment: Enrollment) -> None:
        self._set_state(LinkState.CONNECTING, f"connecting to {enrollment.cloud_url}")
        for listener in self.identity_listeners:
            listener(enrollment)
        if self.on_attempt is not None:
            self.on_attempt()
        try:
            ctx = await asyncio.to_thread(self.files.client_ssl_context)
        except (OSError, ValueError) as err:  # ssl.SSLError is an OSError
            raise _AuthBlocked(f"the stored certificate or key cannot be used ({err}); "
                               "enroll the gateway again") from None
        try:
            cloud = self._config.cloud
            conn = await open_link(opener(cloud.websocket_backend), await self.proxy.effective(),
                                   ws_url(enrollment.cloud_url), ctx,
                                   subprotocol=p.SUBPROTOCOL, settings=self._ws_settings(cloud))
        except HandshakeRejected as err:
            self._m_connects.labels(f"http_{err.status}").inc()
            if err.status in (401, 403):
                raise _AuthBlocked(f"the cloud refused this gateway (HTTP {err.status}); "
                                   "it may be revoked: enroll it again") from None
            await self._back_off(str(err), err.retry_after or 0.0)
            return
        except ConnectFailed as err:
            self._m_connects.labels("tls_untrusted" if err.tls_verify else "failed").inc()
            if err.tls_verify:
                await self._alert(ALERT_TLS, Severity.CRITICAL,
                                  f"cloud certificate not trusted by the pinned CA: {err}")
            await self._back_off(str(err))
            return
        self._m_connects.labels("connected").inc()
        session = Session(conn, self._dispatch, self._endpoint, tap=self.tap,
                          label=f"cloud {enrollment.cloud_url}")
        await self._serve(session, enrollment)

    def _ws_settings(self, cloud: CloudConfig) -> WsSettings:
        return WsSettings(max_message_bytes=cloud.max_message_bytes, max_queue=cloud.max_queue,
                          write_limit=cloud.write_limit, ping_interval=cloud.ping_interval,
                          ping_timeout=cloud.ping_interval * cloud.missed_pongs,
                          open_timeout=cloud.open_timeout,
                          close_timeout=min(CLOSE_TIMEOUT, cloud.open_timeout),
                          receive_buffer=cloud.receive_buffer)

    async def _serve(self, session: Session, enrollment: Enrollment) -> None:
        assert self._tg is not None
        self._tg.create_task(self._read(session), name="clgwd[link].reader")
        started = time.monotonic()
        if not await self._hello(session, enrollment):
            return
        await self._online(session)
        async with asyncio.TaskGroup() as tg:
            delivery = tg.create_task(self._deliver(session), name="clgwd[link].deliver")
            renewal = tg.create_task(self._renew(session), name="clgwd[link].renew")
            await session.ended.wait()
            delivery.cancel()
            renewal.cancel()
        if time.monotonic() - started >= self._config.cloud.stable_after:
            self._backoff.reset()
        if session.goaway.is_set() and not session.closed.is_set():
            self._tg.create_task(self._drain(session), name="clgwd[link].drain")
            self._set_state(LinkState.CONNECTING, "reconnecting after goaway")
            await self._sleep_or_wake(session.goaway_after)
            return
        await self._lost(session)
        self._backoff.skip_to(DROP_FIRST_ATTEMPT)
        await self._back_off(session.close_reason or "connection closed")

    async def _read(self, session: Session) -> None:
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)

    async def _hello(self, session: Session, enrollment: Enrollment) -> bool:
        local_seq = await self._store.outbox.acked_seq()
        params = {"gateway_id": enrollment.gateway_id, "version": __version__,
                  "protocol": p.PROTOCOL_VERSION, "capabilities": self._capabilities(),
                  "outbox_epoch": await self._outbox_epoch(),
                  "last_acked_seq": local_seq, "time": time.time()}
        try:
            result = await session.request(p.HELLO, params, self._config.cloud.request_timeout)
            cloud_seq = _int_member(result, "acked_seq")
        except (RpcFailed, LinkDown, TimeoutError, TypeError) as err:
            await session.close(1002, "hello failed")
            await session.closed.wait()
            await self._back_off(f"hello failed: {err}")
            return False
        if cloud_seq > local_seq:
            await self._store.outbox.ack(cloud_seq)
        await self._check_clock(result.get("time"))
        return True

    async def _outbox_epoch(self) -> str:
        """Random id of this outbox's seq series, created with it. A factory reset or a
        restored backup starts a new series; the cloud then restarts its de-duplication
        instead of discarding the new, lower seqs as already seen."""
        epoch = await self._store.settings.get(EPOCH_SETTING)
        if not isinstance(epoch, str):
            epoch = uuid.uuid4().hex
            await self._store.settings.set(EPOCH_SETTING, epoch)
        return epoch

    def _capabilities(self) -> list[str]:
        caps = [m for m, implemented in self._commands.methods().items() if implemented]
        if self._endpoint is not None:
            caps.append("binary.tunnel")
        return sorted(caps)

    async def _check_clock(self, server_time: object) -> None:
        if not isinstance(server_time, int | float) or isinstance(server_time, bool):
            return
        skew = time.time() - server_time
        if abs(skew) > CLOCK_SKEW_LIMIT:
            await self._alert(ALERT_CLOCK, Severity.WARNING,
                              f"gateway clock differs from the cloud's by {skew:+.0f} s")
        else:
            await self._store.alerts.clear(ALERT_CLOCK)

    async def _online(self, session: Session) -> None:
        if self._failures:
            _LOGGER.info("Cloud link restored after %d failed attempts", self._failures)
        else:
            _LOGGER.info("Cloud link online (%s)", session.label)
        self._failures = 0
        self.last_error = ""
        if self._current is not None and self._current is not session:
            self._current.superseded = True  # a goaway drain: the endpoint is ours now
        if session.endpoint is not None:
            await session.endpoint.on_link_up(session)
        session.open_binary_lane()
        self._current = session
        # Clear the connection alerts before reporting online, so nobody who sees the
        # link online also sees it refused (a test caught the gap between the two).
        for code in (ALERT_AUTH, ALERT_TLS, ALERT_CERT):
            await self._store.alerts.clear(code)
        self._set_state(LinkState.ONLINE, f"online as {self.gateway_id}")
        await self._queue_status()

    async def _lost(self, session: Session) -> None:
        if self._current is session:
            self._current = None
            if session.endpoint is not None:
                await session.endpoint.on_link_down()

    async def _drain(self, session: Session) -> None:
        await session.drain(self._config.cloud.drain_timeout)
        await session.closed.wait()
        await self._lost(session)

    async def _back_off(self, reason: str, floor: float = 0.0) -> None:
        delay = self._backoff.next_delay(floor)
        level = logging.WARNING if self._failures == 0 else logging.DEBUG
        _LOGGER.log(level, "Cloud link down (%s); retrying in %.1f s", reason, delay)
        self._failures += 1
        self.last_error = reason
        self._set_state(LinkState.BACKOFF, f"offline: {reason}")
        await self._sleep_or_wake(delay)

    async def _sleep_or_wake(self, seconds: float) -> None:
        """Sleep, but return early when config or enrollment changed."""
        self._wake.clear()
        await wait_at_most(self._wake.wait(), seconds)

    async def _identity_change(self, seconds: float) -> None:
        """Wait for ``identity_changed`` (not cleared here: see ``_wait_for_identity``)."""
        await wait_at_most(self._identity_changed.wait(), seconds)

    async def _alert(self, code: str, severity: Severity, message: str) -> None:
        try:
            await self._store.alerts.raise_alert(code, severity, message)
        except OutboxFullError:
            _LOGGER.error("Alert %s not queued upstream: outbox full", code)  # noqa: TRY400

    # -- outbox delivery ------------------------------------------------------------------------

    async def _deliver(self, session: Session) -> None:
        """Send undelivered records in seq order; the cloud acks up to a seq."""
        try:
            while True:
                records = await self._store.outbox.pending(
                    0, self._config.cloud.batch_size, max_bytes=PUSH_PAYLOAD_BUDGET)
                if not records:
                    await self._wait_for_records()
                    continue
                body = [{"seq": r.seq, "kind": r.kind, "payload": r.payload,
                         "created_at": r.created_at} for r in records]
                result = await session.request(p.EVENT_PUSH, {"records": body},
                                               self._config.cloud.request_timeout)
                acked = min(_int_member(result, "acked_seq", minimum=records[0].seq),
                            records[-1].seq)
                self._m_records.inc(await self._store.outbox.ack(acked))
        except LinkDown:
            return
        except (RpcFailed, TimeoutError, TypeError) as err:
            _LOGGER.warning("Outbox delivery failed (%s: %s); reconnecting",
                            type(err).__name__, err)
            await session.close(1011, "outbox delivery failed")

    async def _wait_for_records(self) -> None:
        await wait_at_most(self._store.outbox.wait_for_records(), IDLE_PUSH_WAIT)

    # -- certificate renewal ----------------------------------------------------------------------

    async def _renew(self, session: Session) -> None:
        """Renew the client certificate over the link at 2/3 of its lifetime."""
        while True:
            enrollment = await asyncio.to_thread(self.files.load)
            if enrollment is None:
                return
            wait = (self._renew_deadline(enrollment) - dt.datetime.now(dt.UTC)).total_seconds()
            if wait > 0:
                await asyncio.sleep(min(wait, 3600.0))
                continue
            try:
                await self._renew_once(session, enrollment)
            except LinkDown:
                return
            except (RpcFailed, TimeoutError, TypeError, IdentityError) as err:
                _LOGGER.warning("Certificate renewal failed (%s); retrying in %.0f s",
                                err, RENEW_RETRY)
                await asyncio.sleep(RENEW_RETRY)

    def _renew_deadline(self, enrollment: Enrollment) -> dt.datetime:
        """2/3 into the lifetime, but never sooner than 1/3 of what is left when first
        seen: certificates are back-dated for clock tolerance, so a short-lived one
        would otherwise look overdue at once and be renewed in a tight loop."""
        if self._renewal_plan[0] != enrollment.not_after:
            now = dt.datetime.now(dt.UTC)
            deadline = max(enrollment.renew_at, now + (enrollment.not_after - now) / 3)
            self._renewal_plan = (enrollment.not_after, deadline)
        return self._renewal_plan[1]

    async def _renew_once(self, session: Session, enrollment: Enrollment) -> None:
        csr = await asyncio.to_thread(self.files.make_csr)
        result = await session.request(p.CERT_RENEW, {"csr": csr},
                                       self._config.cloud.request_timeout)
        cert = result.get("certificate") if isinstance(result, dict) else None
        ca = result.get("ca") if isinstance(result, dict) else None
        if not isinstance(cert, str) or not isinstance(ca, str):
            raise TypeError("cert.renew answer lacks certificate or ca")
        renewed = await asyncio.to_thread(self.files.store_certificate, cert, ca,
                                          enrollment.account_id, enrollment.cloud_url)
        _LOGGER.info("Client certificate renewed; valid until %s",
                     renewed.not_after.isoformat())

    # -- cloud commands ---------------------------------------------------------------------------

    async def _dispatch(self, request: p.Request) -> Any:
        params = dict(request.params)
        key = params.pop(p.IDEMPOTENCY_PARAM, None)
        if key is not None and not (isinstance(key, str) and 0 < len(key) <= 200):
            raise RpcFailed(p.RpcError(p.INVALID_PARAMS,
                                       "idempotency_key must be a string of 1-200 characters"))
        ctx = CommandContext(actor=CLOUD_ACTOR, idempotency_key=key)
        try:  # before the idempotency check: a refused method needs no key
            check_caller(request.method, ctx)
        except CallerRefused as err:
            raise RpcFailed(p.RpcError(p.LOCAL_ONLY, err.message, {"code": err.code})) from None
        if not self._commands.is_mutating(request.method):
            return await self._call(request.method, params, ctx)
        if key is None:
            raise RpcFailed(p.RpcError(p.INVALID_PARAMS,
                                       f"{request.method} changes state and needs "
                                       "an idempotency_key"))
        return await self._idempotency.run(
            key, request.method, lambda: self._call(request.method, params, ctx))

    async def _call(self, method: str, params: dict[str, Any], ctx: CommandContext) -> Any:
        try:
            return await self._commands.call(method, params, ctx)
        except UnknownCommand as err:
            raise RpcFailed(p.RpcError(p.METHOD_NOT_FOUND, err.message,
                                       {"code": err.code})) from None
        except NotSupportedYet as err:
            raise RpcFailed(p.RpcError(p.NOT_SUPPORTED_YET, err.message,
                                       {"code": err.code})) from None
        except ClgwdError as err:
            raise RpcFailed(p.RpcError(p.APPLICATION_ERROR, err.message,
                                       {"code": err.code})) from None

    async def _cmd_cloud_status(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        return await self.cloud_status()

    async def _cmd_cloud_enroll(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        account_id, token = enroll_params(params)
        _LOGGER.info("Enrollment in account %s requested by %s", account_id, ctx.actor)
        await self.enroll(account_id, token)
        return await self.cloud_status()

    async def _status_report(self, params: Mapping[str, Any], ctx: CommandContext) -> Any:
        return self._status_payload()

    def _status_payload(self) -> dict[str, Any]:
        return {"at": time.time(), "version": __version__,
                "components": {n: s.as_json() for n, s in self._statuses().items()}}

    # -- status upstream and outbox alert ---------------------------------------------

    async def _status_loop(self) -> None:
        """Watch the outbox fill level often; queue a (coalesced) status record less often."""
        next_status = 0.0
        while True:
            await self._check_outbox()
            if (time.monotonic() >= next_status and self.state not in (
                    LinkState.NOT_CONFIGURED, LinkState.NOT_ENROLLED)):
                await self._queue_status()
                next_status = time.monotonic() + self._config.cloud.status_interval
            await asyncio.sleep(min(OUTBOX_CHECK_INTERVAL, self._config.cloud.status_interval))

    async def _queue_status(self) -> None:
        """Only the newest status matters: older undelivered ones are replaced."""
        try:
            async with self._store.db.transaction() as tx:
                await self._store.outbox.enqueue(tx, "status", self._status_payload(),
                                                 coalesce_key="status")
        except OutboxFullError:
            _LOGGER.debug("Status record skipped: outbox full")

    async def _check_outbox(self) -> None:
        outbox = self._store.outbox
        depth = await outbox.depth()
        self._m_depth.set(depth)
        if depth >= outbox.max_records * NEAR_FULL_RATIO:
            await self._alert(ALERT_OUTBOX, Severity.WARNING,
                              f"outbox holds {depth} undelivered records "
                              f"(limit {outbox.max_records}); the cloud is not taking them")
        else:
            await self._store.alerts.clear(ALERT_OUTBOX)


def _int_member(result: Any, name: str, minimum: int = 0) -> int:
    """``result[name]`` as an int >= ``minimum``; a TypeError names what was wrong."""
    value = result.get(name) if isinstance(result, dict) else None
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise TypeError(f"the cloud's answer has {name}={value!r}, expected an integer "
                        f">= {minimum}")
    return value
