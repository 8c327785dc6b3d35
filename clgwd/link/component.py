"""Component ``link``: the cloud link's lifecycle, its API and the cloud's commands.

The connection itself is supervised by ``LinkSupervisor`` (``clgwd.link.connection``),
the base of ``CloudLink``; outbox delivery is ``clgwd.link.delivery`` and certificate
renewal ``clgwd.link.renewal``. ``CloudLink`` registers ``status.report``,
``cloud.status`` and ``cloud.enroll`` with the router and routes the cloud's requests
to the router's handlers (idempotency keys for mutating ones). It also carries the
system part's requests to the cloud (``release.latest`` and the mutual-TLS context of
release downloads, docs/updates.md).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from typing import Any, Final, Self

from clgwd import __version__
from clgwd.commands import (
    CLOUD_ACTOR,
    CallerRefused,
    CommandContext,
    CommandRouter,
    UnknownCommand,
    check_caller,
)
from clgwd.component import ComponentStatus
from clgwd.config import ClgwdConfig, Secret
from clgwd.config.cloud import SavedCloudAddress, with_saved_address
from clgwd.errors import ClgwdError, NotSupportedYet
from clgwd.link import address
from clgwd.link.address import AddressRequest
from clgwd.link.connection import (
    ALERT_AUTH,
    ALERT_CERT,
    ALERT_TLS,
    LinkState,
    LinkSupervisor,
)
from clgwd.link.enroll import enroll
from clgwd.link.idempotency import IdempotencyStore
from clgwd.link.identity import Enrollment, IdentityError
from clgwd.link.local import CloudUnavailable, enroll_params, status_view
from clgwd.metrics import Metrics
from clgwd.protocol import rpc as p
from clgwd.protocol.channel import BinaryEndpoint, LinkDown
from clgwd.protocol.rpc import RpcFailed
from clgwd.store import Action, Event, OutboxFullError, Severity, Store
from clgwd.store.outbox import NEAR_FULL_RATIO

_LOGGER = logging.getLogger(__name__)

OUTBOX_CHECK_INTERVAL: Final = 5.0
SHUTDOWN_CLOSE_TIMEOUT: Final = 2.0
ALERT_OUTBOX: Final = "outbox_near_full"

StatusSource = Callable[[], Mapping[str, ComponentStatus]]


class CloudLink(LinkSupervisor):
    """Component ``link``: the outbound websocket, enrollment and outbox delivery."""

    def __init__(self, config: ClgwdConfig, store: Store, commands: CommandRouter,
                 statuses: StatusSource, metrics: Metrics | None = None) -> None:
        metrics = metrics or Metrics()
        super().__init__(config, store, commands, metrics)
        self._file_config = config
        self._saved_address: SavedCloudAddress | None = None
        """The address saved at the gateway (``clgwd.link.address``), over the file's."""
        self._enroll_lock = asyncio.Lock()
        self._statuses = statuses
        self._idempotency = IdempotencyStore(store.db)
        self._m_depth = metrics.gauge("clgwd_link_outbox_depth", "Undelivered outbox records")
        self.proxy.register(commands)
        commands.register("status.report", self._status_report, mutating=False)
        commands.register("cloud.status", self._cmd_cloud_status, mutating=False)
        commands.register("cloud.enroll", self._cmd_cloud_enroll, mutating=True)
        commands.register("cloud.address.forget", self._cmd_address_forget, mutating=True)

    # -- component lifecycle ----------------------------------------------------------------

    async def __aenter__(self) -> Self:
        try:
            self._saved_address = await address.load_saved(self._store)
        except ValueError as err:
            _LOGGER.warning("The cloud address saved at the gateway is not valid (%s); the "
                            "config file's cloud.url applies", err)
        await self._use_config(self._effective(self._file_config))
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
        self._file_config = config
        await self._use_config(self._effective(config))

    def _effective(self, file: ClgwdConfig) -> ClgwdConfig:
        """The file's config with the address saved at the gateway in force (saved over
        file: ``clgwd.config.cloud.with_saved_address``, the rule ``clgwd.settings``
        reports)."""
        cloud = with_saved_address(file.cloud, self._saved_address)
        return file if cloud is file.cloud else file.model_copy(update={"cloud": cloud})

    async def _use_config(self, config: ClgwdConfig) -> None:
        old = self._config.cloud
        self._config = config
        self.proxy.cloud = config.cloud
        self.delivery.config = config
        self.renewal.config = config
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

    async def enroll(self, account_id: str, token: Secret,
                     request: AddressRequest | None = None, actor: str = "local"
                     ) -> Enrollment:
        """Enroll with the address in force, or the one typed at the gateway
        (``request``, ``clgwd.link.address.plan``); the link connects right after. A
        typed address and CA are saved only once the cloud accepted the enrollment: a
        failure changes nothing."""
        async with self._enroll_lock:
            todo = address.plan(request or AddressRequest(), self._saved_address,
                                self._file_config.cloud)
            enrollment = await enroll(self._config.state.dir, todo.url, account_id, token,
                                      todo.ca_file, proxy=await self.proxy.effective(),
                                      ca_pem=todo.ca_pem)
            if todo.save:
                await self._save_address(todo.url, todo.ca_pem, actor)
        self._blocked_fingerprint = None
        if self.state in (LinkState.NOT_ENROLLED, LinkState.AUTH_FAILED):
            self._set_state(LinkState.CONNECTING, f"enrolled; connecting to {todo.url}")
        self.identity_changed()
        return enrollment

    async def _save_address(self, url: str, ca_pem: str | None, actor: str) -> None:
        """Store the address (and CA) the enrollment just succeeded with; the link uses
        it from now on (and after a restart)."""
        async with self._store.db.transaction() as tx:
            new = await address.save_in(tx, self._store, url, ca_pem, actor)
            await self._store.history.record(tx, Event(
                actor=actor, action=Action.EDIT, asset="Cloud address", subject=url,
                properties_changed=["cloud.url"] + (["cloud.ca"] if ca_pem else [])))
        self._saved_address = new
        _LOGGER.info("Cloud address %s%s saved by %s", url,
                     " (with its CA certificate)" if ca_pem else "", actor)
        await self._use_config(self._effective(self._file_config))

    async def forget_address(self, actor: str) -> bool:
        """Drop the saved address: the config file's ``cloud.url`` applies again."""
        async with self._enroll_lock:
            if self._saved_address is None:
                return False
            async with self._store.db.transaction() as tx:
                await address.forget_in(tx, self._store)
                await self._store.history.record(tx, Event(
                    actor=actor, action=Action.DELETE, asset="Saved settings",
                    subject="cloud.url", properties_changed=["cloud.url"]))
            self._saved_address = None
            _LOGGER.info("Saved cloud address forgotten by %s", actor)
            await self._use_config(self._effective(self._file_config))
            return True

    async def cloud_status(self) -> dict[str, Any]:
        """``cloud.status`` (docs/api.md): enrolled?, account, link state and why."""
        enrollment = await self._load_enrollment()
        alerts = {a.code: a.message for a in await self._store.alerts.active()}
        alert = next((alerts[c] for c in (ALERT_AUTH, ALERT_CERT, ALERT_TLS) if c in alerts),
                     None)
        current = self.tracker.current
        view = status_view(state=self.state.value, enrollment=enrollment,
                           cloud_url=self._config.cloud.url, since=current.since,
                           message=current.message, alert=alert)
        return view | self._address_view()

    def _address_view(self) -> dict[str, Any]:
        """The address in force and where it came from (never the CA itself)."""
        saved = self._saved_address
        url = self._config.cloud.url
        return {"cloud_url": url,
                "cloud_url_source": "page" if saved is not None
                else ("file" if url is not None else None),
                "cloud_url_set_by": saved.actor if saved is not None else None,
                "cloud_ca_saved": saved is not None and saved.ca_pem is not None}

    # -- requests for the system part (release updates, docs/updates.md) ---------------

    async def latest_release(self, params: dict[str, Any]) -> Any:
        """``release.latest`` on the current connection: the newest release offered."""
        return await self._cloud_request(p.RELEASE_LATEST, params)

    async def _cloud_request(self, method: str, params: dict[str, Any]) -> Any:
        """One gateway-to-cloud request on the current connection."""
        session = self._current
        if session is None or self.state != LinkState.ONLINE:
            raise CloudUnavailable(f"the cloud link is {self.state.value.replace('_', ' ')}")
        try:
            return await session.request(method, params, self._config.cloud.request_timeout)
        except RpcFailed as err:
            raise CloudUnavailable(f"the cloud refused {method}: {err.error.message}") from None
        except (LinkDown, TimeoutError) as err:
            raise CloudUnavailable(f"{method}: the cloud link dropped ({type(err).__name__})"
                                   ) from None

    async def cloud_tls(self) -> tuple[str, ssl.SSLContext]:
        """The enrolled cloud URL and a mutual-TLS context for downloads from it."""
        enrollment = await self._load_enrollment()
        if enrollment is None:
            raise CloudUnavailable("the gateway is not enrolled with the cloud")
        return enrollment.cloud_url, await asyncio.to_thread(self.files.client_ssl_context)

    async def enrolled_release_key(self) -> str:
        """Base64 Ed25519 release key delivered at enrollment, or ""."""
        enrollment = await self._load_enrollment()
        return enrollment.release_key if enrollment is not None else ""

    def info(self) -> dict[str, Any]:
        """What the status page shows about the link."""
        return {"state": self.state.value, "gateway_id": self.gateway_id,
                "last_error": self.last_error, "failures": self._failures}

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
        request = address.address_params(params)
        _LOGGER.info("Enrollment in account %s requested by %s", account_id, ctx.actor)
        await self.enroll(account_id, token, request, ctx.actor)
        return await self.cloud_status()

    async def _cmd_address_forget(self, params: Mapping[str, Any], ctx: CommandContext
                                  ) -> Any:
        """``cloud.address.forget {}``: the config file's ``cloud.url`` applies again."""
        if params:
            raise address.InvalidCloudUrl("cloud.address.forget takes no parameters")
        forgotten = await self.forget_address(ctx.actor)
        file = self._file_config.cloud
        settings = [
            {"key": key, "value": None if value is None else str(value),
             "source": "file" if value is not None else "default",
             "set_by": None, "set_at": None}
            for key, value in (("cloud.url", file.url),
                               ("cloud.enrollment_ca_file", file.enrollment_ca_file))]
        return {"forgotten": ["cloud.url"] if forgotten else [], "settings": settings}

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
