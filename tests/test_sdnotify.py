"""sd_notify over a real AF_UNIX datagram socket (path and abstract addresses)."""

from __future__ import annotations

import os
from pathlib import Path

from clgwd.sdnotify import Notifier
from tests.daemon.notify import NotifyListener


async def test_messages_reach_a_path_socket(tmp_path: Path) -> None:
    listener = NotifyListener(tmp_path / "notify")
    try:
        notifier = Notifier({"NOTIFY_SOCKET": str(listener.path)})
        assert notifier.enabled
        notifier.ready("Running")
        message = await listener.next()
        assert message == {"READY": "1", "STATUS": "Running", "MAINPID": str(os.getpid())}
        notifier.watchdog()
        assert await listener.next() == {"WATCHDOG": "1"}
        notifier.stopping()
        assert (await listener.next())["STOPPING"] == "1"
    finally:
        listener.close()


async def test_abstract_socket_address() -> None:
    import asyncio
    import socket

    name = f"clgwd-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.setblocking(False)
    try:
        Notifier({"NOTIFY_SOCKET": "@" + name}).status("hello")
        data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(sock, 1024), 5)
        assert data == b"STATUS=hello"
    finally:
        sock.close()


def test_without_notify_socket_is_a_no_op() -> None:
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.notify("READY=1") is False


def test_gone_socket_never_raises(tmp_path: Path) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")})
    assert notifier.notify("READY=1") is False


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_interval == 15.0
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}).watchdog_interval is None
    assert Notifier({"WATCHDOG_USEC": "x"}).watchdog_interval is None
    assert Notifier({}).watchdog_interval is None
