"""The reference cloud server: enrollment, the gateway websocket, a view and an API.

One HTTPS listener (aiohttp). TLS asks for a client certificate but does not require
one (``CERT_OPTIONAL``): ``/v1/enroll`` is reached before the gateway has a
certificate, while ``/v1/gateway`` refuses connections without a valid one (401) or for
unknown or revoked gateways (403). Admin API calls (POST) need the admin token as a
bearer token; the HTML view and GET API are read-only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import json
import logging
import secrets
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Final, Self

from aiohttp import web

from clgwd.protocol import rpc as p
from clgwd.protocol.sockopts import tune_link_socket
from clgwd.refcloud import view
from clgwd.refcloud.ca import CertificateAuthority, CsrRejected, gateway_id_from_der
from clgwd.refcloud.hub import LAUNCH_MODES, LaunchError, TunnelHub
from clgwd.refcloud.releases import ReleaseRejected, ReleaseShelf
from clgwd.refcloud.sessions import GatewaySession, SessionClosed, Tap
from clgwd.refcloud.store import CloudStore, TokenRejected

_LOGGER = logging.getLogger(__name__)
DEFAULT_LIFETIME: Final = dt.timedelta(days=7)
SessionCallback = Callable[[GatewaySession], None]
_JSON_LIMIT: Final = 64 << 10
MAX_ADMIN_NAME: Final = 128
"""Longest admin name put into a stream ticket (the OPEN body is limited to 8 KiB)."""
TUNNEL_METHODS: Final = frozenset({"tunnel.start", "tunnel.stop", "tunnel.list"})
WS_CLOSE_TIMEOUT: Final = 2.0
"""Seconds to wait for a gateway's close frame before dropping the socket."""


class RefCloud:
    """The whole reference cloud; ``async with RefCloud(dir) as cloud`` serves it."""

    def __init__(self, directory: Path, host: str = "127.0.0.1", port: int = 0, *,
                 cert_lifetime: dt.timedelta = DEFAULT_LIFETIME,
                 admin_token: str | None = None,
                 max_message_bytes: int = p.MAX_MESSAGE_BYTES,
                 view_port: int | None = None, tunnel_mux: bool = True,
                 link_receive_buffer: int = 0) -> None:
        self.dir = directory
        self.host = host
        self.port = port
        self.cert_lifetime = cert_lifetime
        self.admin_token = admin_token or secrets.token_urlsafe(18)
        self.max_message_bytes = max_message_bytes
        self.link_receive_buffer = link_receive_buffer
        """``SO_RCVBUF`` of each gateway's link socket (0 = autotuning; see
        ``clgwd.protocol.sockopts``)."""
        self.view_port = view_port
        """Optional plain-HTTP port for the read-only view (demo: no CA to import)."""
        self.store = CloudStore(directory / "refcloud.db")
        self.sessions: dict[str, GatewaySession] = {}
        self.on_session_ready: list[SessionCallback] = []
        self.reject: tuple[int, float | None] | None = None
        """Test/ops hook: answer websocket upgrades with this HTTP status + Retry-After."""
        self.tap: Tap | None = None
        """Test hook: called with ("in"|"out", text) for websocket text messages and
        ("enroll", answer JSON) for each enrollment answer (never the request: token)."""
        self.connection_attempts = 0
        self.clock: Callable[[], float] = time.time
        """The cloud's clock as told to gateways in ``hello`` (tests skew it)."""
        self._ca: CertificateAuthority | None = None
        self._ssl: ssl.SSLContext | None = None
        self._runner: web.AppRunner | None = None
        self._view_runner: web.AppRunner | None = None
        self._all_sessions: set[GatewaySession] = set()
        self.tunnel_mux = tunnel_mux
        """Attach the cloud tunnel mux to each gateway's binary lane (False: tests that
        drive the raw binary lane themselves)."""
        self.tunnels = TunnelHub(directory)
        """Tunnel authority (key in ``tunnel-authority.key``), per-gateway muxes, Launches."""
        self.releases = ReleaseShelf(directory)
        self.release_key: str | None = None
        """Base64 raw Ed25519 release public key given to gateways at enrollment."""

    # -- lifecycle -------------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await asyncio.to_thread(self.dir.mkdir, parents=True, exist_ok=True)
        self._ca = await asyncio.to_thread(CertificateAuthority, self.dir / "ca")
        self._ssl = await asyncio.to_thread(self._server_context)
        await self.store.__aenter__()
        try:
            await self.tunnels.__aenter__()
            try:
                await self.start()
            except BaseException:
                await self.tunnels.__aexit__(None, None, None)
                raise
        except BaseException:
            await self.store.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            await self.stop()
            await self.close_view()
        finally:
            try:
                await self.tunnels.__aexit__(*exc_info)
            finally:
                await self.store.__aexit__(*exc_info)

    def _server_context(self) -> ssl.SSLContext:
        ca = self.ca
        hosts = [self.host, "localhost"] if self.host != "localhost" else ["localhost"]
        cert, key = ca.issue_server_cert(hosts)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(ca.cert_path))
        ctx.load_cert_chain(str(cert), str(key))
        ctx.verify_mode = ssl.CERT_OPTIONAL
        return ctx

    async def start(self) -> None:
        """Listen (again, after ``stop``) on the same port."""
        runner = web.AppRunner(self._app(), access_log=None, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port, ssl_context=self._ssl,
                           reuse_address=True)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.port = runner.addresses[0][1]
        _LOGGER.info("Reference cloud listening on %s", self.url)
        if self.view_port is not None and self._view_runner is None:
            self._view_runner = web.AppRunner(self._view_app(), access_log=None)
            await self._view_runner.setup()
            await web.TCPSite(self._view_runner, self.host, self.view_port).start()
            self.view_port = self._view_runner.addresses[0][1]

    async def stop(self, code: int = 1012, reason: str = "service restart") -> None:
        """Stop listening, then close every gateway connection at once (a restart).

        The listener goes first so gateways that retry at once are refused instead of
        being accepted and dropped a second time by the shutdown.
        """
        if self._runner is None:
            return
        for site in list(self._runner.sites):
            await site.stop()
        async with asyncio.TaskGroup() as tg:
            for session in list(self._all_sessions):
                tg.create_task(session.close(code, reason), name="refcloud.close")
        await self._runner.cleanup()
        self._runner = None

    async def close_view(self) -> None:
        if self._view_runner is not None:
            await self._view_runner.cleanup()
            self._view_runner = None

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def ca(self) -> CertificateAuthority:
        if self._ca is None:
            raise RuntimeError("refcloud is not started")
        return self._ca

    @property
    def ca_file(self) -> Path:
        return self.ca.cert_path

    # -- operations used by the CLI, demo and tests ----------------------------------------

    async def create_token(self, account_id: str, uses: int = 1,
                           ttl: float = 24 * 3600) -> str:
        return await self.store.create_token(account_id, uses, ttl)

    async def command(self, gateway_id: str, method: str, params: dict[str, Any],
                      idempotency_key: str | None = None, limit: float = 30.0) -> Any:
        """Send a command to a connected gateway; raises RpcFailed/SessionClosed."""
        session = self.sessions.get(gateway_id)
        if session is None or session.closed.is_set():
            raise SessionClosed(gateway_id)
        key = idempotency_key or uuid.uuid4().hex
        command_id = await self.store.command_sent(gateway_id, method, params, key)
        try:
            result = await session.call(method, {**params, p.IDEMPOTENCY_PARAM: key}, limit)
        except p.RpcFailed as err:
            await self.store.command_done(command_id, {"error": err.error.as_json()})
            raise
        await self.store.command_done(command_id, {"result": result})
        if method in TUNNEL_METHODS:
            self.tunnels.remember(gateway_id, result)
        return result

    async def renew(self, gateway_id: str, csr: object) -> dict[str, Any]:
        if not isinstance(csr, str):
            raise p.RpcFailed(p.RpcError(p.INVALID_PARAMS, "csr must be a PEM string"))
        try:
            issued = await asyncio.to_thread(self.ca.sign_gateway_csr, csr, gateway_id,
                                             self.cert_lifetime)
        except CsrRejected as err:
            raise p.RpcFailed(p.RpcError(p.INVALID_PARAMS, str(err))) from None
        async with self.store.tx() as tx:
            await self.store.save_gateway_cert(tx, gateway_id, None, issued.serial,
                                               issued.not_after.timestamp())
        return {"certificate": issued.pem, "ca": self.ca.cert_pem,
                "not_after": issued.not_after.timestamp()}

    async def session_ready(self, session: GatewaySession) -> None:
        """After ``hello``: route commands here and attach the tunnel mux to the binary
        lane (then the ``on_session_ready`` callbacks, which may replace the handler)."""
        self.sessions[session.gateway_id] = session
        if self.tunnel_mux:
            await self.tunnels.session_ready(session)
        for callback in self.on_session_ready:
            callback(session)

    def record(self, direction: str, text: str) -> None:
        if self.tap is not None:
            self.tap(direction, text)

    # -- HTTP --------------------------------------------------------------------------------

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=_JSON_LIMIT)
        app.add_routes([
            web.post(p.ENROLL_PATH, self._enroll),
            web.get(p.GATEWAY_PATH, self._gateway_ws),
            web.get("/", self._index),
            web.get("/gateways/{gid}", self._gateway_page),
            web.get("/api/gateways", self._api_gateways),
            web.get("/api/gateways/{gid}", self._api_gateway),
            web.post("/api/gateways/{gid}/commands", self._api_command),
            web.post("/api/gateways/{gid}/revoke", self._api_revoke),
            web.post("/api/gateways/{gid}/goaway", self._api_goaway),
            web.post("/api/accounts/{account}/tokens", self._api_token),
            web.get("/api/gateways/{gid}/tunnels", self._api_tunnels),
            web.post("/api/gateways/{gid}/tunnels/{name}/start", self._api_tunnel_start),
            web.post("/api/gateways/{gid}/tunnels/{name}/stop", self._api_tunnel_stop),
            web.post("/api/gateways/{gid}/tunnels/{name}/launch", self._api_tunnel_launch),
            web.post("/api/releases", self._api_release_upload),
            web.get("/api/releases", self._api_releases),
            web.get(p.RELEASES_PATH + "{version}", self._release_download),
        ])
        return app

    def _view_app(self) -> web.Application:
        """Read-only routes only: nothing here can change state or reach a gateway."""
        app = web.Application()
        app.add_routes([
            web.get("/", self._index),
            web.get("/gateways/{gid}", self._gateway_page),
            web.get("/api/gateways", self._api_gateways),
            web.get("/api/gateways/{gid}", self._api_gateway),
            web.get("/api/gateways/{gid}/tunnels", self._api_tunnels),
        ])
        return app

    @property
    def view_url(self) -> str:
        """Where a browser should look: plain HTTP view if enabled, else the HTTPS one."""
        if self.view_port is not None:
            return f"http://{self.host}:{self.view_port}"
        return self.url

    async def _enroll(self, request: web.Request) -> web.Response:
        body = await _json_body(request)
        account, token = body.get("account_id"), body.get("token")
        gateway_id, csr = body.get("gateway_id"), body.get("csr")
        if not all(isinstance(v, str) for v in (account, token, gateway_id, csr)):
            return _error(400, "account_id, token, gateway_id and csr must be strings")
        assert isinstance(gateway_id, str) and isinstance(csr, str)
        if not p.is_valid_gateway_id(gateway_id):
            return _error(400, "gateway_id is malformed")
        try:
            issued = await asyncio.to_thread(self.ca.sign_gateway_csr, csr, gateway_id,
                                             self.cert_lifetime)
            async with self.store.tx() as tx:
                await self.store.consume_token(tx, str(account), str(token))
                await self.store.save_gateway_cert(tx, gateway_id, str(account),
                                                   issued.serial, issued.not_after.timestamp())
        except CsrRejected as err:
            return _error(400, str(err))
        except TokenRejected as err:
            return _error(err.status, str(err))
        _LOGGER.info("Enrolled gateway %s in account %s", gateway_id, account)
        answer = {"gateway_id": gateway_id, "certificate": issued.pem, "ca": self.ca.cert_pem,
                  "not_after": issued.not_after.timestamp(),
                  "tunnel_authority_key": self.tunnels.authority.public_key_b64}
        if self.release_key is not None:
            answer["release_key"] = self.release_key
        self.record("enroll", json.dumps(answer))
        return web.json_response(answer)

    async def _authenticate(self, request: web.Request) -> str | web.Response:
        ssl_object = request.transport.get_extra_info("ssl_object") if request.transport else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            return _error(401, "a client certificate is required")
        gateway_id, _ = gateway_id_from_der(der)
        row = await self.store.gateway(gateway_id) if gateway_id else None
        if row is None:
            return _error(403, "unknown gateway")
        if row["revoked"]:
            return _error(403, "this gateway is revoked")
        assert gateway_id is not None
        return gateway_id

    async def _gateway_ws(self, request: web.Request) -> web.StreamResponse:
        self.connection_attempts += 1
        if self.reject is not None:
            status, retry_after = self.reject
            headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
            return web.json_response({"message": "rejected by operator"}, status=status,
                                     headers=headers)
        who = await self._authenticate(request)
        if isinstance(who, web.Response):
            return who
        ws = web.WebSocketResponse(protocols=(p.SUBPROTOCOL,), compress=False,
                                   max_msg_size=self.max_message_bytes, autoping=True,
                                   timeout=WS_CLOSE_TIMEOUT)
        await ws.prepare(request)
        link_socket = None
        if request.transport is not None:
            link_socket = request.transport.get_extra_info("socket")
            tune_link_socket(link_socket, receive_buffer=self.link_receive_buffer)
        if ws.ws_protocol != p.SUBPROTOCOL:
            await ws.close(code=1002, message=b"subprotocol clgwd.v1 required")
            return ws
        await self._serve_session(GatewaySession(self, who, ws, link_socket))
        return ws

    async def _serve_session(self, session: GatewaySession) -> None:
        self._all_sessions.add(session)
        try:
            await session.run()
        finally:
            self._all_sessions.discard(session)
            if self.sessions.get(session.gateway_id) is session:
                del self.sessions[session.gateway_id]
                await self.store.gateway_offline(session.gateway_id)

    # -- view and API ----------------------------------------------------------------------------

    async def _index(self, request: web.Request) -> web.Response:
        rows = await self.store.fetchall("SELECT * FROM gateways ORDER BY enrolled_at")
        return web.Response(text=view.render_index(rows), content_type="text/html")

    async def _gateway_page(self, request: web.Request) -> web.Response:
        gid = request.match_info["gid"]
        gw = await self.store.gateway(gid)
        if gw is None:
            raise web.HTTPNotFound(text="unknown gateway")
        s = self.store
        count = await s.fetchone("SELECT count(*) AS n FROM users WHERE gateway_id = ?",
                                 (gid,))
        total = int(count["n"]) if count else 0
        try:
            page = min(max(1, int(request.query.get("page", "1"))), view.page_count(total))
        except ValueError:
            raise web.HTTPBadRequest(text="page must be a whole number") from None
        users = await s.fetchall("SELECT * FROM users WHERE gateway_id = ?"
                                 " ORDER BY source_key, source_id LIMIT ? OFFSET ?",
                                 (gid, view.USERS_PER_PAGE, (page - 1) * view.USERS_PER_PAGE))
        records = await s.fetchall("SELECT * FROM records WHERE gateway_id = ?"
                                   " ORDER BY received_at DESC, seq DESC LIMIT ?",
                                   (gid, view.RECORDS_SHOWN))
        inventory = await s.fetchone("SELECT * FROM inventory WHERE gateway_id = ?", (gid,))
        commands = await s.fetchall("SELECT * FROM commands WHERE gateway_id = ?"
                                    " ORDER BY id DESC LIMIT 50", (gid,))
        tunnels, launches = self.tunnels.view(gid)
        return web.Response(text=view.render_gateway(gw, users, records, inventory, commands,
                                                     tunnels=tunnels, launches=launches,
                                                     user_total=total, page=page),
                            content_type="text/html")

    async def _api_gateways(self, request: web.Request) -> web.Response:
        rows = await self.store.fetchall("SELECT * FROM gateways ORDER BY enrolled_at")
        return web.json_response([_gateway_json(r) for r in rows])

    async def _api_gateway(self, request: web.Request) -> web.Response:
        gid = request.match_info["gid"]
        gw = await self.store.gateway(gid)
        if gw is None:
            return _error(404, "unknown gateway")
        users = await self.store.fetchall("SELECT * FROM users WHERE gateway_id = ?", (gid,))
        return web.json_response({**_gateway_json(gw), "users": [
            {"source_id": u["source_id"], "source_key": u["source_key"],
             "fingerprint": u["fingerprint"], "user": json.loads(u["user"])} for u in users]})

    def _check_admin(self, request: web.Request) -> None:
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), self.admin_token.encode()):
            raise web.HTTPUnauthorized(text="admin token required")

    async def _api_command(self, request: web.Request) -> web.Response:
        self._check_admin(request)
        body = await _json_body(request)
        method, params = body.get("method"), body.get("params", {})
        key = body.get("idempotency_key")
        if not isinstance(method, str) or not isinstance(params, dict) or not (
                key is None or isinstance(key, str)):
            return _error(400, "method must be a string, params an object")
        return await self._command_response(request.match_info["gid"], method, params, key)

    async def _command_response(self, gid: str, method: str, params: dict[str, Any],
                                key: str | None = None) -> web.Response:
        return await _respond(self._result(gid, method, params, key))

    async def _result(self, gid: str, method: str, params: dict[str, Any],
                      key: str | None) -> dict[str, Any]:
        return {"result": await self.command(gid, method, params, key)}

    # -- tunnels ---------------------------------------------------------------------------------

    async def launch(self, gateway_id: str, tunnel: str, *, admin: str,
                     host: str | None = None, port: int | None = None,
                     expiry: float | None = None, mode: str = "http") -> dict[str, Any]:
        """Start ``tunnel`` on the gateway (``tunnel.start``), then a Launch proxy for it.

        Raises SessionClosed, p.RpcFailed, TimeoutError (from the command) or
        LaunchError (no single target host:port and none given).
        """
        params: dict[str, Any] = {"name": tunnel}
        if expiry is not None:
            params["expiry"] = expiry
        result = await self.command(gateway_id, "tunnel.start", params)
        launch = await self.tunnels.launch(gateway_id, tunnel, admin=admin, host=host,
                                           port=port, mode=mode)
        return {"url": launch.url, "launch": launch.as_json(),
                "tunnels": result.get("tunnels") if isinstance(result, dict) else None}

    async def _api_tunnels(self, request: web.Request) -> web.Response:
        gid = request.match_info["gid"]
        if await self.store.gateway(gid) is None:
            return _error(404, "unknown gateway")
        tunnels, launches = self.tunnels.view(gid)
        return web.json_response({"tunnels": tunnels, "launches": launches})

    async def _api_tunnel_start(self, request: web.Request) -> web.Response:
        self._check_admin(request)
        body = await _json_body(request) if request.can_read_body else {}
        params: dict[str, Any] = {"name": request.match_info["name"]}
        if "expiry" in body:
            params["expiry"] = body["expiry"]
        return await self._command_response(request.match_info["gid"], "tunnel.start", params)

    async def _api_tunnel_stop(self, request: web.Request) -> web.Response:
        self._check_admin(request)
        # The Launch proxy stays: its connections now get a 502 naming the gateway's
        # refusal (tunnel stopped) until the tunnel is launched again.
        return await self._command_response(request.match_info["gid"], "tunnel.stop",
                                            {"name": request.match_info["name"]})

    async def _api_tunnel_launch(self, request: web.Request) -> web.Response:
        self._check_admin(request)
        body = await _json_body(request) if request.can_read_body else {}
        host, port = body.get("host"), body.get("port")
        admin, expiry = body.get("admin", "refcloud-admin"), body.get("expiry")
        mode = body.get("mode", "http")
        if not (host is None or isinstance(host, str)) or not (
                port is None or (isinstance(port, int) and not isinstance(port, bool)
                                 and 1 <= port <= 65535)) or not (
                isinstance(admin, str) and 0 < len(admin) <= MAX_ADMIN_NAME) or not (
                expiry is None or (isinstance(expiry, int | float)
                                   and not isinstance(expiry, bool))) or \
                mode not in LAUNCH_MODES:
            return _error(400, "host must be a string, port 1-65535, admin a string of "
                               f"1-{MAX_ADMIN_NAME} characters, expiry a number, mode one "
                               f"of {', '.join(LAUNCH_MODES)}")
        return await _respond(self.launch(request.match_info["gid"],
                                          request.match_info["name"], admin=admin, host=host,
                                          port=port, expiry=expiry, mode=mode))

    async def _api_revoke(self, request: web.Request) -> web.Response:
        self._check_admin(request)
        gid = request.match_info["gid"]
        if not await self.store.set_revoked(gid, True):
            return _error(404, "unknown gateway")
        await self.tunnels.close_launch(gid)
        for session in [s for s in self._all_sessions if s.gateway_id == gid]:
            await session.close(4403, "revoked")
        return web.json_response({"revoked": gid})

    async def _api_goaway(self, request: web.Request) -> web.Response:
        self._check_admin(request)
        session = self.sessions.get(request.match_info["gid"])
        if session is None:
            return _error(409, "the gateway is not connected")
        after = request.query.get("reconnect_after_ms", "0")
        await session.goaway(int(after) if after.isdigit() else 0, "operator request")
        return web.json_response({"goaway": session.gateway_id})

    # -- releases (docs/updates.md) ------------------------------------------------------

    async def _api_release_upload(self, request: web.Request) -> web.Response:
        """Publish a bundle: the body is the file; ``?rollback=true`` marks it as a
        release gateways may downgrade to."""
        self._check_admin(request)
        rollback = request.query.get("rollback", "false") == "true"
        try:
            entry = await self.releases.publish(request.content.iter_chunked(1 << 16),
                                                rollback)
        except ReleaseRejected as err:
            return _error(400, str(err))
        _LOGGER.info("Published release %s (%d bytes)", entry["version"], entry["size"])
        return web.json_response(entry)

    async def _api_releases(self, request: web.Request) -> web.Response:
        return web.json_response(await self.releases.releases())

    async def _release_download(self, request: web.Request) -> web.StreamResponse:
        """The bundle for enrolled gateways only (client certificate); Range works."""
        who = await self._authenticate(request)
        if isinstance(who, web.Response):
            return who
        path = await self.releases.file(request.match_info["version"])
        if path is None:
            return _error(404, "no such release")
        return web.FileResponse(path)

    async def _api_token(self, request: web.Request) -> web.Response:
        self._check_admin(request)
        body = await _json_body(request)
        uses = body.get("uses", 1)
        if not isinstance(uses, int) or isinstance(uses, bool) or not 1 <= uses <= 10_000:
            return _error(400, "uses must be an integer 1-10000")
        account = request.match_info["account"]
        return web.json_response({"account_id": account,
                                  "token": await self.create_token(account, uses)})


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise web.HTTPBadRequest(text="body must be JSON") from None
    if not isinstance(body, dict):
        raise web.HTTPBadRequest(text="body must be a JSON object")
    return body


async def _respond(call: Awaitable[dict[str, Any]]) -> web.Response:
    """Run a command-sending operation; map its failures to the API's statuses."""
    try:
        return web.json_response(await call)
    except SessionClosed:
        return _error(409, "the gateway is not connected")
    except p.RpcFailed as err:
        return web.json_response({"error": err.error.as_json()}, status=502)
    except TimeoutError:
        return _error(504, "the gateway did not answer in time")
    except LaunchError as err:
        return _error(400, str(err))


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"message": message}, status=status)


def _gateway_json(row: Any) -> dict[str, Any]:
    return {"id": row["id"], "account_id": row["account_id"], "online": bool(row["online"]),
            "revoked": bool(row["revoked"]), "last_seen": row["last_seen"],
            "version": row["version"], "last_seq": row["last_seq"],
            "capabilities": json.loads(row["capabilities"]),
            "cert_not_after": row["cert_not_after"],
            "status": json.loads(row["status"]) if row["status"] else None,
            "sync_result": json.loads(row["sync_result"]) if row["sync_result"] else None}
