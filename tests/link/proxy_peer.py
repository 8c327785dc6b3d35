"""tinyproxy, a real HTTP CONNECT proxy from Debian, started by a test on 127.0.0.1."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import require_program


@dataclass
class Proxy:
    port: int
    log: Path

    def connects(self) -> list[str]:
        """The CONNECT requests tinyproxy logged (``host:port``)."""
        lines = self.log.read_text(errors="replace").splitlines()
        return [line.split("): CONNECT ", 1)[1].split()[0] for line in lines
                if "Request (file descriptor" in line and "): CONNECT " in line]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def tinyproxy(directory: Path, *, auth: tuple[str, str] | None = None,
              connect_ports: list[int] | None = None) -> Iterator[Proxy]:
    """Run tinyproxy in the foreground; ``auth`` requires basic auth, ``connect_ports``
    limits CONNECT to those ports (any other port is refused with 403)."""
    binary = require_program("tinyproxy")
    directory.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    lines = [f"Port {port}", "Listen 127.0.0.1", "Timeout 30", "LogLevel Info",
             "MaxClients 50"]
    if auth is not None:
        lines.append(f"BasicAuth {auth[0]} {auth[1]}")
    lines += [f"ConnectPort {p}" for p in connect_ports or []]
    conf = directory / "tinyproxy.conf"
    conf.write_text("\n".join(lines) + "\n")
    log = directory / "tinyproxy.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([binary, "-d", "-c", str(conf)], stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port),
                                                                         timeout=0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tinyproxy did not start: {log.read_text()}")
            time.sleep(0.05)
        yield Proxy(port, log)
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
