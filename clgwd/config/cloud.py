"""The ``cloud`` config section: where the cloud is and how the link behaves.

Every key has a default, so a file without a ``cloud`` section works: the link then
stays idle until ``cloud.url`` is set and the gateway is enrolled. Identity (key,
certificate, pinned CA) is not config; it lives in ``<state dir>/cloud/``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Final, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field, model_validator

from clgwd.config.proxy import CloudProxyConfig
from clgwd.config.types import AbsolutePath, Seconds, StrictModel

CLOUD_URL_MAX: Final = 512
"""Longest cloud address accepted (a host name is at most 253 characters)."""


def check_cloud_url(value: str) -> str:
    """The cloud's base URL as the link uses it (no trailing slash); ValueError in words a
    technician understands. The config file's ``cloud.url`` and the address typed on
    the onboarding page's Cloud step (or ``clgwd enroll --cloud-url``) both pass here."""
    if len(value) > CLOUD_URL_MAX:
        raise ValueError(f"must be at most {CLOUD_URL_MAX} characters")
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError("must not contain spaces or control characters")
    parts = urlsplit(value)
    if parts.scheme.lower() == "http":
        raise ValueError("must be an https:// URL, not http://: the link to the cloud is "
                         "always encrypted (e.g. https://cloud.example.com)")
    if parts.scheme != "https" or not parts.hostname:
        raise ValueError("must be an https:// URL with a host name, e.g. "
                         "https://cloud.example.com")
    if "@" in parts.netloc:
        raise ValueError("must not contain a user name or password: the gateway signs in "
                         "with its Account ID and token")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("must be the cloud's base URL without a path")
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("must have a valid port number") from None
    return value.rstrip("/")


CloudUrl = Annotated[str, AfterValidator(check_cloud_url)]


def _check_backend(value: str) -> str:
    """An explicit ``picows`` must be installed: a clear config error beats a link that
    silently runs on the other backend."""
    if value == "picows" and importlib.util.find_spec("picows") is None:
        raise ValueError("picows is not installed (pip install 'clgwd[fast]'); "
                         "use auto or websockets")
    return value


WebsocketBackend = Annotated[Literal["auto", "websockets", "picows"],
                             AfterValidator(_check_backend)]


class CloudConfig(StrictModel):
    """The outbound link to the cloud control plane (docs/config-cloud.md)."""

    url: CloudUrl | None = None
    """Cloud base URL; the link uses ``wss://<host>/v1/gateway`` and ``/v1/enroll``."""
    enrollment_ca_file: AbsolutePath | None = None
    """PEM CA bundle trusted for the enrollment request; default: the system store."""
    open_timeout: Seconds = 10.0
    """Seconds for TCP + TLS + websocket handshake before the attempt counts as failed."""
    request_timeout: Seconds = 30.0
    """Seconds to wait for the cloud's reply to one of our requests."""
    ping_interval: Seconds = 20.0
    missed_pongs: Annotated[int, Field(ge=1, le=10)] = 2
    """The connection is dead after this many ping intervals without a pong."""
    backoff_base: Seconds = 1.0
    backoff_cap: Seconds = 300.0
    stable_after: Seconds = 60.0
    """A connection that lasted this long resets the backoff."""
    max_message_bytes: Annotated[int, Field(ge=65_552, le=16 << 20)] = 1 << 20
    max_queue: Annotated[int, Field(ge=1, le=1024)] = 16
    write_limit: Annotated[int, Field(ge=4096, le=16 << 20)] = 64 << 10
    websocket_backend: WebsocketBackend = "auto"
    """Websocket library of the link: ``picows`` (C framing, optional extra ``fast``),
    ``websockets`` (pure Python), or ``auto`` = picows when installed."""
    receive_buffer: Annotated[int, Field(ge=0, le=64 << 20)] = 0
    """``SO_RCVBUF`` of the link socket in bytes; 0 = kernel autotuning. A small value
    (64 KiB) cuts tunnel latency under bulk load on a fast LAN/loopback link whose
    receiver is CPU-bound; it caps the TCP window, so keep 0 on WAN links."""
    batch_size: Annotated[int, Field(ge=1, le=1000)] = 200
    """Outbox records per ``event.push`` request."""
    status_interval: Seconds = 60.0
    """Seconds between status records queued upstream."""
    drain_timeout: Seconds = 30.0
    """After a goaway, how long the old connection may finish running commands."""
    proxy: CloudProxyConfig | None = None
    """HTTP CONNECT proxy for the link and enrollment (the page's setting overrides it)."""
    proxy_from_environment: bool = True
    """Without ``proxy`` (and no page setting), use ``HTTPS_PROXY``/``NO_PROXY``."""

    @model_validator(mode="after")
    def _check_backoff(self) -> CloudConfig:
        if self.backoff_cap < self.backoff_base:
            raise ValueError("backoff_cap must be >= backoff_base")
        return self


# -- the address saved at the gateway (onboarding page, ``clgwd enroll --cloud-url``) ------

ADDRESS_SETTING: Final = "cloud.address"
"""State-DB setting: the cloud address (and the CA of a private cloud) saved when an
enrollment with them succeeded; the link writes it, ``clgwd.settings`` reports it."""


@dataclass(frozen=True)
class SavedCloudAddress:
    """The address saved at the gateway, which wins over the file's ``cloud.url``.

    ``ca_pem`` (PEM certificates) plays the role of ``cloud.enrollment_ca_file``; without
    it, the file's CA file still applies while the saved address is the file's, and the
    system trust store otherwise (a CA file for another cloud would refuse this one)."""

    url: str
    ca_pem: str | None = None
    actor: str | None = None
    at: float | None = None

    def as_json(self) -> dict[str, Any]:
        return {"url": self.url, "ca_pem": self.ca_pem, "actor": self.actor, "at": self.at}


def saved_cloud_address(stored: Mapping[str, Any] | None) -> SavedCloudAddress | None:
    """The stored row as a ``SavedCloudAddress``; ValueError when it does not validate
    (stored by another version with other rules)."""
    if stored is None:
        return None
    url, ca_pem = stored.get("url"), stored.get("ca_pem")
    actor, at = stored.get("actor"), stored.get("at")
    if not isinstance(url, str) or not (ca_pem is None or isinstance(ca_pem, str)):
        raise ValueError("the saved cloud address is not readable")
    return SavedCloudAddress(check_cloud_url(url), ca_pem or None,
                             actor if isinstance(actor, str) else None,
                             float(at) if isinstance(at, int | float) else None)


def with_saved_address(cloud: CloudConfig, saved: SavedCloudAddress | None) -> CloudConfig:
    """``cloud`` with the saved address in force: its URL, and the file's
    ``enrollment_ca_file`` only while that URL is the file's and no CA was saved."""
    if saved is None:
        return cloud
    keep_file_ca = saved.ca_pem is None and saved.url == cloud.url
    return cloud.model_copy(update={
        "url": saved.url,
        "enrollment_ca_file": cloud.enrollment_ca_file if keep_file_ca else None})
