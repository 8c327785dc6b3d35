"""What the link needs from a websocket library, independent of which one runs it.

Two backends implement it: ``clgwd.link.ws`` (websockets, pure Python, always
installed) and ``clgwd.link.ws_picows`` (picows, C framing, optional extra ``fast``).
Each is the only module importing its library; this module imports neither, so the
settings and the errors are shared and the link never changes with the backend
(``clgwd.link.backends``, ``cloud.websocket_backend``, docs/config-cloud.md).
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol, runtime_checkable

from clgwd import __version__

USER_AGENT: Final = f"clgwd/{__version__}"

@dataclass(frozen=True)
class WsSettings:
    """Connection limits; see docs/protocol.md "Transport"."""

    max_message_bytes: int
    max_queue: int
    write_limit: int
    ping_interval: float
    ping_timeout: float
    open_timeout: float
    close_timeout: float = 5.0
    receive_buffer: int = 0
    """``SO_RCVBUF`` of the link socket; 0 = kernel autotuning (see ``clgwd.protocol.sockopts``)."""


class WsError(Exception):
    """Base of every failure a backend raises."""


class HandshakeRejected(WsError):
    """The server answered the upgrade with an HTTP error status."""

    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"cloud rejected the connection with HTTP {status}")
        self.status = status
        self.retry_after = retry_after


class ConnectFailed(WsError):
    """TCP, TLS or websocket handshake failed (retryable unless TLS verification)."""

    def __init__(self, message: str, *, tls_verify: bool = False) -> None:
        super().__init__(message)
        self.tls_verify = tls_verify


class Closed(WsError):
    """The connection is closed (by either side or by a keepalive timeout)."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"connection closed (code {code}{', ' + reason if reason else ''})")
        self.code = code
        self.reason = reason


KEEPALIVE_CLOSE: Final = (1011, "keepalive ping timeout")
"""Close code and reason when no pong came back in time (websockets' wording, which
``clgwd.link.session`` recognises)."""


class LinkConnection(Protocol):
    """One open websocket of either backend; exactly one task may call ``recv``."""

    async def recv(self) -> str | bytes:
        """The next message; raises ``Closed`` when the connection is gone."""

    async def send_text(self, text: str) -> None:
        """Send one text message; waits while the write buffer is over ``write_limit``."""

    async def send_binary(self, data: bytes) -> None:
        """Send one binary message; waits while the write buffer is over ``write_limit``."""

    def writable(self) -> bool:
        """Open and the write buffer below the low-water mark (``DirectBinaryChannel``)."""

    def send_binary_nowait(self, data: bytes) -> None:
        """Send one binary message now; only right after ``writable()``."""

    def path_min_rtt(self) -> float | None:
        """The TCP socket's smallest round-trip time (``clgwd.protocol.sockopts.min_rtt``)."""

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close handshake, bounded by the settings' ``close_timeout``."""


@runtime_checkable
class BinarySinkConnection(Protocol):
    """Optional: a connection that can deliver binary messages from its socket callback
    (the picows backend; websockets always goes through ``recv``)."""

    def set_binary_sink(self, sink: Callable[[bytes], None] | None) -> None:
        """Call ``sink`` with each binary message while none waits in the queue; a sink
        that raises closes the connection with 1011."""


class OpenConnection(Protocol):
    """A backend's ``open_connection``."""

    async def __call__(self, url: str, ssl_context: ssl.SSLContext | None, subprotocol: str,
                       settings: WsSettings, *,
                       sock: socket.socket | None = None) -> LinkConnection:
        """``sock``: an already connected socket to run TLS and the handshake over
        (``clgwd.link.proxy``); None dials the URL's host."""


def connect_failure(err: OSError, open_timeout: float) -> ConnectFailed:
    """TCP, TLS and timeout failures in the same words for both backends (the link
    alerts on ``tls_verify``; the others are retried)."""
    if isinstance(err, ssl.SSLCertVerificationError):
        return ConnectFailed(f"TLS verification failed: {err.verify_message}", tls_verify=True)
    if isinstance(err, ssl.SSLError):
        return ConnectFailed(f"TLS error: {err.reason or err}")
    if isinstance(err, TimeoutError):
        return ConnectFailed(f"no websocket handshake within {open_timeout:g} s")
    return ConnectFailed(f"cannot connect: {err.strerror or err}")


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form only; dates are ignored)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if 0 <= seconds <= 86400 else None
