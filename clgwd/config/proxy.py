"""The HTTP proxy the gateway reaches the cloud through (``cloud.proxy``).

Many enterprise LANs let only a proxy out. The link, enrollment and pre-flight all use
the one ``ProxyTarget`` this module describes; where it comes from is decided in one
place (``effective_proxy``): the onboarding page's setting, else ``cloud.proxy`` in the
config file, else ``HTTPS_PROXY``/``https_proxy`` from the daemon's environment (unless
``cloud.proxy_from_environment`` is false). ``NO_PROXY``/``no_proxy`` and
``cloud.proxy.no_proxy`` name the hosts reached directly. Pure functions only: no I/O.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal
from urllib.parse import unquote, urlsplit

from pydantic import AfterValidator, Field, model_validator

from clgwd.config.secret import Secret
from clgwd.config.types import Port, StrictModel

ProxySource = Literal["page", "config", "environment"]

PAGE_SETTING: Final = "cloud.proxy"
"""State-DB setting: the page's proxy choice (``cloud.proxy.set``), without the password."""
PAGE_SECRET: Final = "cloud.proxy.password"  # noqa: S105 - the secret's name
"""Secret-box entry: the password of the page's proxy."""


def check_proxy_host(value: str) -> str:
    """A host name or IP address, without scheme, port or user."""
    text = value.strip()
    if not text or len(text) > 253 or any(c.isspace() or c in "/@?#" for c in text):
        raise ValueError("must be the proxy's host name or IP address (no http://, no port)")
    if ":" in text:
        try:
            ipaddress.IPv6Address(text.strip("[]"))
        except ValueError:
            raise ValueError("must be the host name or IP address alone; put the port in "
                             "port") from None
        return text.strip("[]")
    return text


def _check_no_proxy_entry(value: str) -> str:
    text = value.strip()
    if not text or any(c.isspace() for c in text):
        raise ValueError("each entry must be a host name, a domain (.example.com), an IP "
                         "address or network, or *")
    return text


ProxyHost = Annotated[str, AfterValidator(check_proxy_host)]
NoProxyEntry = Annotated[str, AfterValidator(_check_no_proxy_entry)]


class CloudProxyConfig(StrictModel):
    """``cloud.proxy``: an HTTP proxy that accepts CONNECT (docs/config-cloud.md)."""

    host: ProxyHost
    port: Port = 3128
    username: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    password: Secret | None = None
    """Basic authentication; with ``username`` only."""
    no_proxy: list[NoProxyEntry] = Field(default_factory=list)
    """Hosts reached directly, as in ``NO_PROXY`` (``.example.com``, ``10.0.0.0/8``)."""

    @model_validator(mode="after")
    def _check_auth(self) -> CloudProxyConfig:
        if self.password is not None and self.username is None:
            raise ValueError("password needs a username")
        return self


@dataclass(frozen=True)
class ProxyTarget:
    """The proxy in force and where that setting came from."""

    host: str
    port: int
    username: str | None = None
    password: Secret | None = None
    no_proxy: tuple[str, ...] = ()
    source: ProxySource = "config"

    @property
    def address(self) -> str:
        """``host:port`` as the technician typed it (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def describe(self) -> str:
        """Without the password: what logs and the page may show."""
        user = f"{self.username}@" if self.username else ""
        return f"http://{user}{self.address}"

    def authorization(self) -> str | None:
        """The ``Proxy-Authorization`` value (basic, RFC 7617), None without a user."""
        if self.username is None:
            return None
        password = self.password.reveal() if self.password is not None else ""
        token = base64.b64encode(f"{self.username}:{password}".encode()).decode("ascii")
        return f"Basic {token}"

    def bypasses(self, host: str, port: int) -> bool:
        """Whether ``host:port`` is reached directly (``no_proxy``)."""
        return bypasses(host, port, self.no_proxy)


def from_config(config: CloudProxyConfig, source: ProxySource = "config") -> ProxyTarget:
    return ProxyTarget(config.host, config.port, config.username, config.password,
                       tuple(config.no_proxy), source)


def from_environment(environ: Mapping[str, str]) -> ProxyTarget | None:
    """``HTTPS_PROXY``/``https_proxy`` (``http://[user:password@]host[:port]``) and
    ``NO_PROXY``/``no_proxy``; None when unset. Raises ``ValueError`` on a value that
    is not an ``http://`` proxy URL (saying which variable)."""
    for name in ("https_proxy", "HTTPS_PROXY"):
        value = environ.get(name, "").strip()
        if value:
            break
    else:
        return None
    if "://" not in value:
        value = "http://" + value
    parts = urlsplit(value)
    try:
        port = parts.port or 3128
    except ValueError:
        raise ValueError(f"{name}: the port is not a number") from None
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"{name}: must be http://host:port (an HTTP proxy that accepts "
                         "CONNECT)")
    no_proxy = environ.get("no_proxy") or environ.get("NO_PROXY") or ""
    password = unquote(parts.password) if parts.password is not None else None
    return ProxyTarget(
        parts.hostname, port, unquote(parts.username) if parts.username else None,
        Secret(password) if password is not None else None,
        tuple(e.strip() for e in no_proxy.split(",") if e.strip()), "environment")


def bypasses(host: str, port: int, no_proxy: Sequence[str]) -> bool:
    """curl's and Python's ``NO_PROXY`` rules: ``*`` matches all; ``example.com`` and
    ``.example.com`` match the domain and its subdomains; an IP address or network
    (``10.0.0.0/8``) matches addresses in it; ``host:port`` only that port."""
    name = host.strip("[]").rstrip(".").lower()
    for raw in no_proxy:
        entry = raw.strip().lower()
        if entry == "*":
            return True
        entry_port: int | None = None
        head, sep, tail = entry.rpartition(":")
        if sep and tail.isdigit() and head and (head.count(":") == 0 or head.endswith("]")):
            entry, entry_port = head, int(tail)
        if entry_port is not None and entry_port != port:
            continue
        entry = entry.strip("[]").rstrip(".")
        if _address_match(name, entry):
            return True
        domain = entry.lstrip(".")
        if domain and (name == domain or name.endswith("." + domain)):
            return True
    return False


def _address_match(name: str, entry: str) -> bool:
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    try:
        return address in ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False


def page_proxy(stored: Mapping[str, Any] | None, password: Secret | None
               ) -> tuple[CloudProxyConfig | None, bool]:
    """The page's stored setting as (the proxy it sets, whether it says "no proxy");
    ``(None, False)``: the page leaves the proxy to the file and the environment.
    Raises ``ValueError`` on a stored value that no longer validates."""
    if not isinstance(stored, Mapping):
        return None, False
    mode = stored.get("mode")
    if mode == "none":
        return None, True
    if mode != "manual":
        return None, False
    username = stored.get("username") or None
    config = CloudProxyConfig.model_validate({
        "host": stored.get("host"), "port": stored.get("port", 3128), "username": username,
        "password": password if username else None,
        "no_proxy": list(stored.get("no_proxy") or ())}, strict=False)
    return config, False


def effective_proxy(page: ProxyTarget | None, page_disabled: bool,
                    config: CloudProxyConfig | None, use_environment: bool,
                    environ: Mapping[str, str]) -> ProxyTarget | None:
    """The one precedence rule: the page's setting (a proxy, or "no proxy"), then the
    config file, then the environment."""
    if page is not None:
        return page
    if page_disabled:
        return None
    if config is not None:
        return from_config(config)
    if use_environment:
        return from_environment(environ)
    return None
