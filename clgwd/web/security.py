"""Request guards of the web listener: Host check, HTTPS redirect, headers, auth, CSRF.

Order (outermost first): security headers -> errors -> Host check -> HTTPS redirect ->
session and CSRF. The Host check comes before anything else that answers, so a page on
another site that re-points its DNS name at the gateway (DNS rebinding) gets nothing.
No HSTS header: the certificate is self-signed, and a browser told to trust it once
could be locked out for a year when it is remade.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Middleware

from clgwd.errors import ClgwdError
from clgwd.web.auth import Forbidden, Session, Sessions, Unauthorized, csrf_matches
from clgwd.web.messages import human
from clgwd.web.tls import MDNS_NAME

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

SESSION_COOKIE: Final = "__Host-clgwd_session"
"""``__Host-``: the browser only accepts it Secure, for this host, with Path=/."""
CSRF_HEADER: Final = "X-CSRF-Token"
SESSION_KEY: Final = web.RequestKey("clgwd_session", Session)
# Answered on plain HTTP too and from any Host: monitoring, not the page.
PLAIN_PATHS: Final = frozenset({"/api/v1/health", "/metrics"})
# Reachable without a session (the page needs them to log in).
PUBLIC_PATHS: Final = frozenset({
    "/", "/api/v1/health", "/metrics", "/api/v1/openapi.json", "/api/v1/session",
    "/api/v1/session/setup", "/api/v1/session/login", "/favicon.ico", "/api/v1/messages",
})
UNSAFE_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
VERDICT_CACHE_SIZE: Final = 256

CSP: Final = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
              "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
              "base-uri 'none'")
STATIC_HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), usb=()",
}


class WrongHost(ClgwdError):
    code = "wrong_host"
    http_status = 421


class WebDisabled(ClgwdError):
    code = "https_disabled"
    http_status = 404


@dataclass
class HostPolicy:
    """The names the gateway answers to; IP literals must be an address of this host."""

    names: set[str] = field(default_factory=set)
    # Verdicts by (Host header, local address): parsing both costs more than the rest of
    # a small API request, and a browser sends the same pair on every request.
    _verdicts: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False)

    @classmethod
    def build(cls, extra_names: Iterable[str]) -> HostPolicy:
        host = socket.gethostname().lower()
        return cls({MDNS_NAME, "localhost", host, f"{host}.local", *extra_names})

    def set_names(self, names: set[str]) -> None:
        """A reload changed ``http.names``: earlier verdicts no longer hold."""
        self.names = names
        self._verdicts.clear()

    def allows(self, request: web.Request) -> bool:
        raw = request.host or ""
        key = (raw, _local_address(request))
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = self._decide(raw, key[1])
            if len(self._verdicts) >= VERDICT_CACHE_SIZE:
                self._verdicts.clear()  # bounded: junk Host headers cannot grow it
            self._verdicts[key] = verdict
        return verdict

    def _decide(self, raw_host: str, local_address: str) -> bool:
        host = _host_only(raw_host)
        if host is None:
            return False
        if host in self.names:
            return True
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return False
        return ip.is_loopback or ip == _parse_local_ip(local_address)


def _host_only(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        parts = urlsplit(f"//{raw}")
        return parts.hostname.lower().rstrip(".") if parts.hostname else None
    except ValueError:
        return None


def _local_address(request: web.Request) -> str:
    """The address this connection arrived on (by definition one the gateway owns)."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport is not None else None
    return str(sockname[0]) if sockname else ""


def _parse_local_ip(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(address.partition("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def make_guards(policy: HostPolicy, sessions: Sessions,
                https_port: Callable[[], int | None]) -> tuple[Middleware, list[Middleware]]:
    """The header middleware (outside the error middleware, so error answers get the
    headers too) and the guards that run inside it: Host check, HTTPS redirect, then
    session and CSRF, in that order."""

    @web.middleware
    async def headers(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            if exc.status >= 400 and request.path.startswith("/api/"):
                response = _json_error(exc)  # the API answers JSON, even aiohttp's errors
            else:
                _decorate(request, exc)
                raise
        _decorate(request, response)
        return response

    def check_host(request: web.Request) -> None:
        if request.path not in PLAIN_PATHS and not policy.allows(request):
            raise WrongHost("this gateway does not answer to the host name "
                            f"{(request.host or '')[:100]!r}; open it by its IP address "
                            "or https://cloudlink.local/")

    def check_https(request: web.Request) -> None:
        if request.secure or request.path in PLAIN_PATHS:
            return
        port = https_port()
        if port is None:
            raise WebDisabled("the onboarding page is served over HTTPS only, and "
                              "http.tls_listen is empty")
        host = _host_only(request.host) or "cloudlink.local"
        host = f"[{host}]" if ":" in host else host
        suffix = "" if port == 443 else f":{port}"
        raise web.HTTPPermanentRedirect(f"https://{host}{suffix}{request.path_qs}")

    def check_session(request: web.Request) -> None:
        session = sessions.get(request.cookies.get(SESSION_COOKIE))
        if session is not None:
            request[SESSION_KEY] = session
        if request.method in UNSAFE_METHODS:
            _check_origin(request)
        if _is_public(request.path):
            return
        if session is None:
            raise Unauthorized("log in first")
        if request.method in UNSAFE_METHODS and not csrf_matches(
                session, request.headers.get(CSRF_HEADER)):
            raise Forbidden(f"missing or wrong {CSRF_HEADER} header; reload the page")

    @web.middleware
    async def guards(request: web.Request, handler: Handler) -> web.StreamResponse:
        # One middleware, three checks in order: each middleware layer is a coroutine
        # frame on every request, and these checks never need to await.
        check_host(request)
        check_https(request)
        check_session(request)
        return await handler(request)

    return headers, [guards]


def _json_error(exc: web.HTTPException) -> web.Response:
    code = (exc.reason or "error").lower().replace(" ", "_")
    message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else (
        f"{exc.status} {exc.reason}")
    response = web.json_response({"code": code, "message": message, **human(code)},
                                 status=exc.status)
    if "Allow" in exc.headers:
        response.headers["Allow"] = exc.headers["Allow"]
    return response


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith("/static/")


def _check_origin(request: web.Request) -> None:
    """A browser always sends Origin on cross-site writes; it must be this gateway."""
    origin = request.headers.get("Origin")
    if origin is None:
        return
    if origin == "null" or _host_only(urlsplit(origin).netloc) != _host_only(request.host):
        raise Forbidden("cross-origin request refused")


def _decorate(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.update(STATIC_HEADERS)
    if request.path.startswith("/api/") or request.path == "/":
        response.headers["Cache-Control"] = "no-store"
