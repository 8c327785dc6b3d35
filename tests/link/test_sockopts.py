"""Link socket tuning: small kernel queues so tunnel frames wait in our scheduler."""

from __future__ import annotations

import contextlib
import fcntl
import socket
import struct
from collections.abc import Iterator

from websockets.asyncio.server import ServerConnection, serve

from clgwd.link.ws import WsSettings, open_connection
from clgwd.protocol.sockopts import NOTSENT_LOWAT, min_rtt, tune_link_socket

_SIOCOUTQNSD = 0x894B  # Linux: bytes in the send queue not yet sent
_TCP_NOTSENT_LOWAT = getattr(socket, "TCP_NOTSENT_LOWAT", 25)


@contextlib.contextmanager
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected loopback TCP pair (sender, receiver); the receiver never reads."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        receiver_buffer = 16 * 1024
        sender = socket.socket()
        sender.connect(listener.getsockname())
        receiver, _ = listener.accept()
        receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receiver_buffer)
        with sender, receiver:
            yield sender, receiver


def fill(sock: socket.socket) -> int:
    """Write until the kernel refuses more; the bytes it holds but has not sent."""
    sock.setblocking(False)
    chunk = b"x" * 65536
    with contextlib.suppress(BlockingIOError):
        for _ in range(4096):
            sock.send(chunk)
    buf = bytearray(4)
    fcntl.ioctl(sock.fileno(), _SIOCOUTQNSD, buf)
    return int(struct.unpack("i", buf)[0])


def test_notsent_lowat_keeps_unsent_bytes_near_the_mark() -> None:
    """With a stalled receiver, a tuned socket stops taking data near 16 KiB unsent
    (plus at most one segment), an untuned one queues its whole send buffer."""
    with tcp_pair() as (sender, _):
        tune_link_socket(sender)
        assert sender.getsockopt(socket.IPPROTO_TCP, _TCP_NOTSENT_LOWAT) == NOTSENT_LOWAT
        assert sender.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        tuned = fill(sender)
    with tcp_pair() as (sender, _):
        untuned = fill(sender)
    assert tuned <= NOTSENT_LOWAT + 65536, tuned
    assert untuned > 4 * tuned, (untuned, tuned)


def test_receive_buffer_only_when_asked() -> None:
    with socket.socket() as autotuned, socket.socket() as fixed:
        default = autotuned.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        tune_link_socket(autotuned)
        tune_link_socket(fixed, receive_buffer=65536)
        assert autotuned.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == default
        # Linux doubles the value for its bookkeeping.
        assert fixed.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 2 * 65536


def test_sockets_without_tcp_are_left_alone() -> None:
    tune_link_socket(None)
    with socket.socket(socket.AF_UNIX) as unix:
        tune_link_socket(unix, receive_buffer=65536)  # no TCP options: must not raise
        assert unix.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) != 2 * 65536


def test_min_rtt_is_the_kernels_figure_for_tcp_only() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener, \
            socket.create_connection(listener.getsockname()) as client:
        server, _ = listener.accept()
        with server:
            for _ in range(5):
                client.sendall(b"ping")
                server.recv(16)
            rtt = min_rtt(client)
    assert rtt is not None and 0 < rtt < 0.05  # loopback: microseconds
    assert min_rtt(None) is None
    with socket.socket(socket.AF_UNIX) as unix:
        assert min_rtt(unix) is None


async def test_link_connection_socket_is_tuned() -> None:
    """``open_connection`` (the gateway's link) tunes the socket it connected."""
    async def handler(ws: ServerConnection) -> None:
        await ws.wait_closed()

    settings = WsSettings(max_message_bytes=2**17, max_queue=16, write_limit=65536,
                          ping_interval=20, ping_timeout=20, open_timeout=5,
                          receive_buffer=131072)
    async with serve(handler, "127.0.0.1", 0, subprotocols=["clgwd.v1"]) as server:
        port = server.sockets[0].getsockname()[1]
        conn = await open_connection(f"ws://127.0.0.1:{port}/", None, "clgwd.v1", settings)
        try:
            sock = conn._conn.transport.get_extra_info("socket")  # test-only peek
            assert sock.getsockopt(socket.IPPROTO_TCP, _TCP_NOTSENT_LOWAT) == NOTSENT_LOWAT
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 2 * 131072
        finally:
            await conn.close()
