"""systemd's notify protocol, in-tree (the protocol is stable and tiny).

One datagram per call, ``KEY=value`` lines, to the AF_UNIX socket named by
``$NOTIFY_SOCKET`` (a leading ``@`` means the abstract namespace). Outside systemd the
variable is unset and every call is a cheap no-op.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Final

_LOGGER = logging.getLogger(__name__)


class Notifier:
    """Sends sd_notify messages; reads ``$NOTIFY_SOCKET`` and ``$WATCHDOG_USEC`` once."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address: Final = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_interval = _watchdog_interval(env)
        self.sent: list[str] = []  # the last few messages, for status and debugging

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def notify(self, *states: str) -> bool:
        """Send ``states`` as one datagram; never raises (systemd may be gone)."""
        if not self._address:
            return False
        message = "\n".join(states)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)
                sock.connect(self._address)
                sock.send(message.encode())
        except OSError as err:
            _LOGGER.debug("sd_notify %r failed: %s", message, err)
            return False
        self.sent = [*self.sent[-19:], message]
        return True

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, text: str) -> None:
        self.notify(f"STATUS={text}")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def stopping(self, status: str = "Stopping") -> None:
        self.notify("STOPPING=1", f"STATUS={status}")


def _watchdog_interval(env: dict[str, str] | os._Environ[str]) -> float | None:
    """Half of ``$WATCHDOG_USEC`` in seconds, if the watchdog is meant for this process."""
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec), 1) / 2_000_000
    except ValueError:
        return None
