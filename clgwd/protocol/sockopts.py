"""Socket options for the one TCP connection that carries the cloud link (both ends).

Why: tunnel frames are scheduled by priority (control first, then deficit round-robin,
see ``clgwd.protocol.session``), but once a frame is handed to the socket it queues FIFO in
the kernel. With Linux's default autotuning those kernel queues grow to several MiB, so a
small request frame waits behind a whole window of bulk data (head-of-line blocking
below our scheduler). ``TCP_NOTSENT_LOWAT`` keeps the unsent part of the send queue
small: the socket stops accepting data, the transport's buffer fills, the websocket's
``send`` waits (its ``write_limit``), and the remaining bulk data stays in *our* queue,
where a small stream's frame overtakes it. This is the remedy HTTP/2 servers use for
prioritisation; it costs no throughput because the kernel still holds a full
congestion window of sent-but-unacknowledged data.

A bounded receive buffer (``receive_buffer``) does the same for the far end's queue when
the receiving process is the bottleneck (it cannot read as fast as the sender sends, as
on loopback). It also caps the TCP receive window, so it must stay at or above the
link's bandwidth-delay product: 0 (the default) leaves it to kernel autotuning, which is
right for WAN links.

Standard library only: both the gateway's link and the reference cloud use it.
"""

from __future__ import annotations

import logging
import socket
import struct
from typing import Final, Protocol

_LOGGER = logging.getLogger(__name__)

NOTSENT_LOWAT: Final = 16 * 1024
"""Unsent bytes the kernel may hold for the link before the socket reports "full"."""
_TCP_NOTSENT_LOWAT: Final = getattr(socket, "TCP_NOTSENT_LOWAT", 25)  # Linux value
_TCP_INFO: Final = getattr(socket, "TCP_INFO", 11)
_TCPI_MIN_RTT: Final = struct.Struct("=I")
_TCPI_MIN_RTT_OFFSET: Final = 148
"""``tcpi_min_rtt`` (microseconds) in Linux's ``struct tcp_info`` (since 4.10)."""


class SocketLike(Protocol):
    """``socket.socket`` or asyncio's ``TransportSocket`` wrapper of one."""

    @property
    def family(self) -> int: ...

    def setsockopt(self, level: int, optname: int, value: int, /) -> None: ...

    def getsockopt(self, level: int, optname: int, buflen: int, /) -> bytes: ...


def tune_link_socket(sock: SocketLike | None, *, receive_buffer: int = 0) -> None:
    """Set ``TCP_NODELAY``, ``TCP_NOTSENT_LOWAT`` and, if > 0, ``SO_RCVBUF`` on ``sock``.

    ``sock`` is what ``transport.get_extra_info("socket")`` returns (None for transports
    without one, e.g. in-memory tests: nothing to do). A platform that lacks an option
    keeps working with the default behaviour; only the latency under load differs.
    """
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return
    options = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1, "TCP_NODELAY"),
               (socket.IPPROTO_TCP, _TCP_NOTSENT_LOWAT, NOTSENT_LOWAT, "TCP_NOTSENT_LOWAT")]
    if receive_buffer > 0:
        options.append((socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer, "SO_RCVBUF"))
    for level, option, value, name in options:
        try:
            sock.setsockopt(level, option, value)
        except OSError as err:
            _LOGGER.debug("link socket: cannot set %s=%d: %s", name, value, err)


def min_rtt(sock: SocketLike | None) -> float | None:
    """The smallest round-trip time (seconds) the kernel measured on this TCP socket, or
    None where it is not known (no socket, not TCP, not Linux, no sample yet).

    Why the kernel's figure: it is taken from ACKs, so it is the path's delay without the
    time either process spends queueing or computing; the tunnel multiplies it by its
    receive rate to size the windows that keep the link busy (bandwidth-delay product).
    """
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    size = _TCPI_MIN_RTT_OFFSET + _TCPI_MIN_RTT.size
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, size)
    except OSError:
        return None
    if len(info) < size:
        return None
    micros: int = _TCPI_MIN_RTT.unpack_from(info, _TCPI_MIN_RTT_OFFSET)[0]
    if micros in (0, 0xFFFF_FFFF):  # no sample yet (the kernel starts at ~0U)
        return None
    return micros / 1e6
