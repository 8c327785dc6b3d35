"""The credit a tunnel session grants its peer, and the limits that size it.

* **Credit, not watermarks.** A sender may only send DATA while it holds both stream
  and connection credit (HTTP/2 style). The receiver returns credit with WINDOW only
  once bytes have left its memory (reached the local socket's kernel buffer). So a
  slow local reader or a slow link pushes back to the far sender, nothing is dropped,
  and memory per stream is bounded by the window plus one socket read, by
  construction (snitun#353 and #376 are what the other designs hit).
* **Connection credit is never held by a stream's batching.** Stream credit goes back
  in batches of a quarter window; connection credit goes back as soon as the bytes
  left memory. Were it tied to the stream's batch, many streams each holding a
  sub-batch remainder could together hold the whole connection window, and every
  stream would stop (64 streams x 256 KiB = the default 16 MiB).
* **Shared window.** While a bulk stream shares the link with an interactive one, stream
  credit is capped near the link's bandwidth-delay product (``shared_window``).

``CreditLedger`` sits between ``FrameScheduler`` (which spends the credit the peer gave
us) and ``Session`` (which counts what the peer sends).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from clgwd.protocol import wire
from clgwd.protocol.channel import BinaryChannel, PathAwareChannel
from clgwd.protocol.scheduler import FrameScheduler
from clgwd.protocol.streams import Stream, StreamState

RATE_INTERVAL: Final = 0.02
"""Seconds over which the receive rate is sampled for the shared window."""
ACTIVE_WITHIN: Final = 0.2
"""A stream that moved data this recently (seconds) is active; idle ones (an iperf3
control connection, a browser's kept-alive sockets) do not count."""


@dataclass(frozen=True)
class SessionLimits:
    """Window sizes and limits; both ends may use different values."""

    stream_window: int = 1024 * 1024
    connection_window: int = 16 * 1024 * 1024
    max_streams: int = 256
    max_open_rate: float = 200.0
    """OPENs per second accepted from the peer (token bucket); beyond it is a flood."""
    open_burst: int = 400
    shared_window_floor: int = 32 * 1024
    """Least stream credit while streams share the link (see ``shared_window``)."""


def shared_window(receive_rate: float, min_rtt: float | None, limits: SessionLimits) -> int:
    """Stream credit while a bulk stream shares the link with an interactive one:
    twice the link's bandwidth-delay product (receive rate x the kernel's smallest
    RTT), within [``shared_window_floor``, ``stream_window``].

    Why: credit beyond what keeps the link busy only parks data in the kernel queues,
    FIFO, where an interactive stream's next frame waits behind it (on loopback a 1 MiB
    window cost ~2 ms per request under one bulk download). Twice the product keeps a
    window-limited stream growing (rate follows window / RTT, so the cap doubles per
    round trip while the path has room), and on a WAN link it comes out at or above
    the configured window. Without an RTT the configured window stands.
    """
    if min_rtt is None:
        return limits.stream_window
    wanted = int(2 * receive_rate * min_rtt)
    return max(limits.shared_window_floor, min(limits.stream_window, wanted))


DEFAULT_LIMITS: Final = SessionLimits()


class CreditLedger(FrameScheduler):
    """Receive-side credit: what we granted, what came in, when to give it back."""

    def __init__(self, channel: BinaryChannel, name: str, limits: SessionLimits) -> None:
        super().__init__(channel, name)
        self.limits = limits
        self.streams: dict[int, Stream] = {}
        self._path_min_rtt: Callable[[], float | None] | None = (
            channel.path_min_rtt if isinstance(channel, PathAwareChannel) else None)
        self._rate_bytes = 0
        self._rate_since = time.monotonic()
        self._receive_rate = 0.0
        """Bytes per second of DATA received: the larger of the last sample and half
        the previous figure (a decaying maximum)."""
        self._window_cap = limits.stream_window
        """Stream credit is returned up to this: ``shared_window`` while a bulk stream
        shares the link with an interactive one; otherwise it doubles each sample back
        to ``stream_window``, so a bulk stream that slowed for one sample never gets a
        whole window back at once (a credit burst queues ahead of the next request)."""
        self._conn_recv_remaining = wire.INITIAL_CONNECTION_WINDOW
        self._conn_unreturned = 0

    def return_credit(self, stream: Stream, *, force: bool) -> None:
        """Give back credit for bytes that left our memory: connection credit at once,
        stream credit batched (a quarter window, or ``force``) to cut WINDOW chatter."""
        if stream.closed or (stream.conn_held == 0 and stream.unreturned == 0):
            return
        transport = stream.transport
        # Bytes still queued in the local socket's buffer are not ours to re-grant yet.
        in_memory = transport.get_write_buffer_size() if transport else 0
        left = stream.conn_held - in_memory
        if left > 0:
            stream.conn_held -= left
            self._give_connection_credit(left)
        window = self._credit_window()
        # Never more outstanding credit than ``window`` (smaller while streams share).
        pending = min(stream.unreturned - in_memory, window - stream.recv_remaining)
        batching = stream.writing_paused or pending < window // 4
        if pending <= 0 or (batching and not force):
            return
        stream.unreturned -= pending
        stream.recv_remaining += pending
        if stream.state in (StreamState.OPEN, StreamState.LOCAL_DONE):
            self._send_control(wire.encode_window(stream.id, pending))

    def _credit_window(self) -> int:
        """The stream window credit is returned up to (``_window_cap``), updated once
        per rate sample (one ``getsockopt`` at most)."""
        now = time.monotonic()
        elapsed = now - self._rate_since
        if elapsed >= RATE_INTERVAL:
            self._receive_rate = max(self._rate_bytes / elapsed, self._receive_rate / 2)
            self._rate_bytes = 0
            self._rate_since = now
            limit = self.limits.stream_window
            if self._path_min_rtt is None:
                self._window_cap = limit
            elif self._bulk_beside_interactive(now, elapsed):
                self._window_cap = shared_window(self._receive_rate, self._path_min_rtt(),
                                                 self.limits)
            else:
                self._window_cap = min(limit, 2 * self._window_cap)
        return self._window_cap

    def _bulk_beside_interactive(self, now: float, elapsed: float) -> bool:
        """True when a bulk stream (it moved at least a floor's worth of DATA, either
        way, per sample interval) shares the link with another active stream: the case
        where queued bulk data delays someone. Bulk streams among themselves (downloads,
        uploads) keep full windows: nobody to protect, and small windows cost them
        throughput. Resets each stream's sample."""
        bulk_bytes = self.limits.shared_window_floor * elapsed / RATE_INTERVAL
        since = now - ACTIVE_WITHIN
        bulk = interactive = 0
        for stream in self.streams.values():
            if stream.sample_bytes >= bulk_bytes:
                bulk += 1
            elif stream.last_activity >= since:
                interactive += 1
            stream.sample_bytes = 0
        return bulk > 0 and interactive > 0

    def _give_connection_credit(self, size: int) -> None:
        self._conn_unreturned += size
        if self._conn_unreturned >= self.limits.connection_window // 4 or \
                self._conn_unreturned >= 2 * self.limits.stream_window:
            increment = self._conn_unreturned
            self._conn_unreturned = 0
            self._conn_recv_remaining += increment
            self._send_control(wire.encode_window(0, increment))

