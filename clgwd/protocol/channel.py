"""The contract between the cloud link and whatever rides on its binary lane.

The link owns the websocket; text messages carry JSON-RPC, binary messages carry
tunnel frames. The tunnel multiplexer implements ``BinaryEndpoint`` and the link calls
it; the link implements ``BinaryChannel`` and the multiplexer sends through it. Neither
side imports the other, so each can be tested with an in-memory pair.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from clgwd.errors import ClgwdError


class LinkDown(ClgwdError):
    """The cloud link is not connected; the send did not happen."""

    code = "link_down"
    http_status = 503


class BinaryChannel(Protocol):
    """Sending side of the link's binary lane (one websocket connection)."""

    async def send_binary(self, data: bytes) -> None:
        """Send one binary message; waits while the socket's write buffer is full
        (back-pressure) and raises ``LinkDown`` if the connection is gone."""


@runtime_checkable
class DirectBinaryChannel(BinaryChannel, Protocol):
    """Optional extension: a channel that can take a message synchronously.

    Why: handing a frame to a writer task costs a task wake-up and waits behind every
    other event of the loop iteration (under load, a whole batch of bulk reads), tens of
    microseconds per frame; a sender that finds the link writable writes the frame in
    the callback that produced it instead. ``send_binary`` stays the path that waits.
    """

    def writable(self) -> bool:
        """True while the connection is open and its write buffer is below the low-water
        mark, so ``send_binary_nowait`` neither waits nor grows a queue."""

    def send_binary_nowait(self, data: bytes) -> None:
        """Send one binary message now; only call it right after ``writable()``."""


@runtime_checkable
class PathAwareChannel(BinaryChannel, Protocol):
    """Optional extension: a channel that knows its path's smallest round-trip time.

    Why: while a bulk stream shares the link with an interactive one, the tunnel gives
    no stream more credit than the link needs to stay busy (about twice rate x RTT),
    so the bulk stream cannot park a window of data in the kernel queues ahead of the
    interactive stream's next frame. Without this figure the tunnel keeps the full
    configured windows.
    """

    def path_min_rtt(self) -> float | None:
        """Seconds, as the kernel measured them on the link's TCP socket; None if unknown."""


class BinaryEndpoint(Protocol):
    """Receiving side: the link's single reader task calls these, in order."""

    async def on_link_up(self, channel: BinaryChannel) -> None:
        """A new connection is established (also after a reconnect or goaway)."""

    async def on_binary(self, data: bytes) -> None:
        """One binary message from the cloud. May await (back-pressure stalls the reader)."""

    async def on_link_down(self) -> None:
        """The connection was lost; ``on_link_up`` follows when a new one is ready."""


@runtime_checkable
class DirectBinaryEndpoint(BinaryEndpoint, Protocol):
    """Optional extension: an endpoint that handles a message synchronously.

    Why: the link can then hand it each binary message in the socket callback that
    parsed it instead of waking its reader task (one loop iteration less per frame:
    about 20 us of added latency and a tenth of the gateway's CPU per GB in the tunnel
    bench). The link only does so while no earlier message waits, so order is kept.
    """

    def on_binary_nowait(self, data: bytes) -> None:
        """``on_binary`` without awaiting: never blocks."""
