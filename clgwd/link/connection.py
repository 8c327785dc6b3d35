"""The cloud link's connection supervisor: one supervised websocket to the cloud.

The supervisor is an explicit state machine (``LinkState``). It waits until the gateway
is configured and enrolled, connects with mutual TLS to the pinned CA, says ``hello``,
then runs the outbox delivery (``clgwd.link.delivery``) and certificate renewal
(``clgwd.link.renewal``) for that connection until it closes or the cloud sends
``goaway``. Failures back off with full jitter; 401/403 and an expired certificate stop
retrying and raise an alert until the gateway is re-enrolled.

``LinkSupervisor`` is the base of ``CloudLink`` (``clgwd.link.component``), which adds
the component's lifecycle, its API and the cloud's commands.
"""

from __future__ import annotations

import abc
import asyncio
import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Final
from urllib.parse import urlsplit

from clgwd import __version__
from clgwd.commands import CommandRouter
from clgwd.component import ComponentState, StatusTracker
from clgwd.config import ClgwdConfig
from clgwd.config.cloud import CloudConfig
from clgwd.link.backends import load_opener
from clgwd.link.delivery import OutboxDelivery, int_member
from clgwd.link.identity import Enrollment, IdentityError, IdentityFiles
from clgwd.link.proxy import ProxySettings, open_link
from clgwd.link.renewal import CertificateRenewal
from clgwd.link.session import Session, Tap
from clgwd.link.wsapi import ConnectFailed, HandshakeRejected, WsSettings
from clgwd.metrics import Metrics
from clgwd.protocol import rpc as p
from clgwd.protocol.channel import BinaryEndpoint, LinkDown
from clgwd.protocol.rpc import RpcFailed
from clgwd.retry import Backoff
from clgwd.store import OutboxFullError, Severity, Store
from clgwd.tasks import wait_at_most

_LOGGER = logging.getLogger(__name__)

IDENTITY_RECHECK: Final = 5.0
"""Idle re-read of the identity files, only for changes no wake-up announces (a
``clgwd enroll`` run while the daemon was not reachable, files restored by hand)."""
CLOSE_TIMEOUT: Final = 5.0
"""Longest wait for the peer's close frame; a dead peer costs missed pongs + this."""
CLOCK_SKEW_LIMIT: Final = 300.0
DROP_FIRST_ATTEMPT: Final = 2
"""After an established connection drops, the first retry window is base * 2**2 (4 s):
a cloud restart drops the whole fleet at the same instant, and a 1-s window would put
every gateway's first retry into the same second."""
EPOCH_SETTING: Final = "link.outbox_epoch"
ALERT_AUTH: Final = "cloud_auth_failed"
ALERT_TLS: Final = "cloud_tls_untrusted"
ALERT_CERT: Final = "cloud_cert_invalid"
ALERT_CLOCK: Final = "cloud_clock_skew"


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


class LinkSupervisor(abc.ABC):
    """Connects, says hello, serves one connection at a time, backs off, repeats."""

    name = "link"

    def __init__(self, config: ClgwdConfig, store: Store, commands: CommandRouter,
                 metrics: Metrics) -> None:
        self._config = config
        self._store = store
        self._commands = commands
        self.tracker = StatusTracker(self.name)
        self.state = LinkState.STOPPED
        self.files = IdentityFiles(config.state.dir)
        self.delivery = OutboxDelivery(config, store, metrics)
        self.renewal = CertificateRenewal(config, self.files)
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
        self.gateway_id: str | None = None
        self.last_error = ""
        self.tap: Tap | None = None
        self.on_attempt: Callable[[], None] | None = None
        self.identity_listeners: list[Callable[[Enrollment], None]] = []
        """Told the enrollment in use before every connection attempt (the daemon wires
        the tunnel component here: gateway id and tunnel-authority key)."""
        self.proxy = ProxySettings(config.cloud, store)
        """The proxy in force (the page's ``cloud.proxy.*`` setting, the file, the
        environment); ``CloudLink`` registers its commands."""
        self._m_connects = metrics.counter("clgwd_link_connect_attempts_total",
                                           "Cloud connection attempts by result", ["result"])
        self._m_online = metrics.gauge("clgwd_link_online", "1 while the cloud link is up")

    @abc.abstractmethod
    async def _dispatch(self, request: p.Request) -> Any:
        """A cloud command on this connection (``CloudLink`` routes it)."""

    @abc.abstractmethod
    async def _queue_status(self) -> None:
        """Queue a status record (``CloudLink``); sent right after coming online."""

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
                self._set_state(LinkState.NOT_CONFIGURED,
                                "idle: no cloud address yet; type it on the Cloud step")
            elif enrollment is None:
                self._set_state(LinkState.NOT_ENROLLED,
                                "idle: not enrolled (clgwd enroll or the onboarding page)")
            elif enrollment.cloud_url != cloud.url:
                self._set_state(LinkState.NOT_ENROLLED,
                                f"idle: enrolled with {enrollment.cloud_url}, but the cloud "
                                f"address is {cloud.url}; enroll again")
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
            open_connection = await load_opener(cloud.websocket_backend)
            conn = await open_link(open_connection, await self.proxy.effective(),
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
            delivery = tg.create_task(self.delivery.run(session), name="clgwd[link].deliver")
            renewal = tg.create_task(self.renewal.run(session), name="clgwd[link].renew")
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
            cloud_seq = int_member(result, "acked_seq")
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
