"""Network namespaces, a virtual LAN and real peers (avahi, dnsmasq) for tests/net.

Every namespace is named ``clgwd-net-<random>`` and removed after the test, even when
it fails; processes started inside are killed by PID. Multicast and broadcast stay on
veth pairs and a bridge inside those namespaces, never on the machine's interfaces.

How gateway code runs "inside" a namespace: the DHCP client and zeroconf open sockets
in the namespace of the calling process, so those tests start the real daemon with
``ip netns exec NS python -m clgwd run`` and talk to it over its control socket (a
unix socket on the shared filesystem). Static addressing and commit-confirm run
in-process with ``NetworkComponent(netns=...)``, which passes ``netns`` to pyroute2.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import require_program, require_root

PYTHON = sys.executable
REPO = Path(__file__).resolve().parents[2]


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True)


def kill_netns_pids(name: str) -> None:
    out = sh("ip", "netns", "pids", name, check=False).stdout.split()
    for pid in out:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)


@pytest.fixture(autouse=True)
def host_resolv_conf_untouched() -> Iterator[None]:
    """Guard: no test here may change the host's /etc/resolv.conf (apt and pip need it)."""
    path = Path("/etc/resolv.conf")
    before = path.read_bytes() if path.exists() else None
    yield
    after = path.read_bytes() if path.exists() else None
    assert after == before, "/etc/resolv.conf was modified by a test"


@dataclass
class Lan:
    """A bridge in a hub namespace; ``attach`` plugs a namespace in with a veth pair."""

    hub: str
    namespaces: list[str] = field(default_factory=list)
    counter: int = 0

    @classmethod
    def new_hub(cls) -> Lan:
        """Create the hub namespace with bridge ``br0``; ``remove()`` undoes everything."""
        hub = f"clgwd-net-{secrets.token_hex(3)}"
        sh("ip", "netns", "add", hub)
        net = cls(hub, [hub])
        try:
            sh("ip", "-n", hub, "link", "add", "br0", "type", "bridge")
            sh("ip", "-n", hub, "link", "set", "br0", "type", "bridge", "forward_delay", "0")
            sh("ip", "-n", hub, "link", "set", "br0", "up")
        except BaseException:
            net.remove()
            raise
        return net

    def remove(self) -> None:
        """Kill what runs in our namespaces (by PID), then delete them."""
        for ns in self.namespaces:
            kill_netns_pids(ns)
        for ns in self.namespaces:
            sh("ip", "netns", "del", ns, check=False)

    def add_ns(self) -> str:
        name = f"clgwd-net-{secrets.token_hex(3)}"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        sh("ip", "-n", name, "link", "set", "lo", "up")
        return name

    def attach(self, ns: str, ifname: str = "eth0", address: str | None = None,
               mac: str | None = None, ipv6: bool = False) -> None:
        self.counter += 1
        hub_end = f"hub{self.counter}"
        sh("ip", "-n", self.hub, "link", "add", hub_end, "type", "veth", "peer", "name",
           ifname, "netns", ns)
        sh("ip", "-n", self.hub, "link", "set", hub_end, "master", "br0", "up")
        if mac:
            sh("ip", "-n", ns, "link", "set", ifname, "address", mac)
        # IPv6 off on the test links unless asked: no DAD delays, no router solicitations.
        sh("ip", "netns", "exec", ns, "sysctl", "-q", "-w",
           f"net.ipv6.conf.{ifname}.disable_ipv6={0 if ipv6 else 1}")
        sh("ip", "-n", ns, "link", "set", ifname, "up")
        if address:
            sh("ip", "-n", ns, "addr", "add", address, "dev", ifname)

    def unplug(self, index: int) -> None:
        """Take the hub end of the ``index``-th attachment down: no carrier on the host."""
        sh("ip", "-n", self.hub, "link", "set", f"hub{index}", "down")

    def plug(self, index: int) -> None:
        sh("ip", "-n", self.hub, "link", "set", f"hub{index}", "up")


@pytest.fixture
def lan() -> Iterator[Lan]:
    """A throw-away L2 segment: hub namespace with bridge ``br0``."""
    require_root()
    net = Lan.new_hub()
    try:
        yield net
    finally:
        net.remove()


class Procs:
    """Processes a test started; all are killed at teardown (by PID)."""

    def __init__(self) -> None:
        self.procs: list[asyncio.subprocess.Process] = []

    async def start(self, *args: str, ns: str | None = None, env: dict[str, str] | None = None,
                    log: Path | None = None) -> asyncio.subprocess.Process:
        argv = (["ip", "netns", "exec", ns] if ns else []) + list(args)
        out = open(log, "ab") if log else asyncio.subprocess.DEVNULL  # noqa: SIM115
        proc = await asyncio.create_subprocess_exec(
            *argv, stdout=out, stderr=asyncio.subprocess.STDOUT,
            env={**os.environ, **(env or {})}, start_new_session=True)
        if log:
            out.close()  # type: ignore[union-attr]
        self.procs.append(proc)
        return proc

    async def stop(self, proc: asyncio.subprocess.Process, sig: int = signal.SIGTERM,
                   wait: float = 10.0) -> int | None:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                await asyncio.wait_for(proc.wait(), wait)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        return proc.returncode

    async def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()


@pytest.fixture
async def procs() -> AsyncIterator[Procs]:
    p = Procs()
    try:
        yield p
    finally:
        await p.close()


# -- reading the kernel (with iproute2, independent of the code under test) -------------------


def kernel(ns: str, *args: str) -> Any:
    """``ip -j -n NS ARGS`` as parsed JSON."""
    out = sh("ip", "-j", "-n", ns, *args).stdout
    return json.loads(out or "[]")


def kernel_v4(ns: str, ifname: str = "eth0") -> list[str]:
    """The IPv4 addresses (with prefix) on ``ifname`` in ``ns``."""
    return [f"{a['local']}/{a['prefixlen']}"
            for link in kernel(ns, "-4", "addr", "show", ifname) for a in link["addr_info"]]


def kernel_gateways(ns: str) -> list[str]:
    return [r["gateway"] for r in kernel(ns, "-4", "route", "show", "default")]


# -- peers ------------------------------------------------------------------------------------


async def wait_for(predicate: Any, timeout: float, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


@dataclass
class Avahi:
    ns: str
    bus: str

    async def resolve(self, name: str, timeout: float = 5.0) -> str | None:
        """``avahi-resolve -4 -n NAME`` in the peer namespace: the address, or None."""
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", self.ns, "avahi-resolve", "-4", "-n", name,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "DBUS_SYSTEM_BUS_ADDRESS": self.bus})
        try:
            out, _ = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return None
        parts = out.decode().split()
        return parts[1] if len(parts) >= 2 else None


async def start_avahi(procs: Procs, ns: str, ifname: str, tmp: Path) -> Avahi:
    """avahi-daemon with a private system bus (peers.md 1c), its own /run/avahi-daemon."""
    require_program("avahi-daemon")
    require_program("avahi-resolve")
    require_program("dbus-daemon")
    tmp.mkdir(parents=True, exist_ok=True)
    sock = tmp / "system_bus_socket"
    bus = f"unix:path={sock}"
    await procs.start("dbus-daemon", "--config-file=/usr/share/dbus-1/system.conf",
                      f"--address={bus}", "--nofork", "--nopidfile", log=tmp / "dbus.log")
    await wait_for(_exists(sock), 5)
    conf = tmp / "avahi.conf"
    conf.write_text(textwrap.dedent(f"""\
        [server]
        host-name=peer-{secrets.token_hex(2)}
        use-ipv4=yes
        use-ipv6=no
        allow-interfaces={ifname}
        enable-dbus=yes
        ratelimit-interval-usec=1000000
        ratelimit-burst=1000
        [wide-area]
        enable-wide-area=no
        [publish]
        publish-hinfo=no
        publish-workstation=no
        [reflector]
        [rlimits]
        """))
    script = ("mkdir -p /run/avahi-daemon && mount -t tmpfs none /run/avahi-daemon && "
              f"exec avahi-daemon --no-drop-root --no-chroot --no-rlimits -f {conf}")
    log = tmp / "avahi.log"
    await procs.start("sh", "-c", script, ns=ns, env={"DBUS_SYSTEM_BUS_ADDRESS": bus}, log=log)

    async def ready() -> bool:
        return "Server startup complete" in log.read_text(errors="replace")

    await wait_for(ready, 10)
    return Avahi(ns, bus)


def _exists(path: Path) -> Any:
    async def check() -> bool:
        return path.exists()
    return check


async def zc_resolve(ns: str, name: str, bind: str, timeout: float = 3.0) -> list[str]:
    """Resolve ``name`` with python-zeroconf from namespace ``ns`` (a separate process)."""
    code = textwrap.dedent(f"""\
        import asyncio, json
        from zeroconf import IPVersion, AddressResolver
        from zeroconf.asyncio import AsyncZeroconf
        async def main():
            azc = AsyncZeroconf(interfaces=[{bind!r}], ip_version=IPVersion.V4Only)
            ar = AddressResolver({name!r})
            await ar.async_request(azc.zeroconf, {int(timeout * 1000)})
            print(json.dumps(ar.parsed_addresses()))
            await azc.async_close()
        asyncio.run(main())
        """)
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", ns, PYTHON, "-c", code,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout + 10)
    assert proc.returncode == 0, err.decode()
    return list(json.loads(out.decode().strip().splitlines()[-1]))


# -- the gateway daemon ------------------------------------------------------------------------


@dataclass
class Gateway:
    ns: str
    dir: Path
    proc: asyncio.subprocess.Process
    started: float

    @property
    def socket(self) -> Path:
        return self.dir / "control.sock"

    @property
    def log(self) -> Path:
        return self.dir / "clgwd.log"

    async def request(self, method: str, url: str, body: Any = None) -> tuple[int, Any]:
        connector = aiohttp.UnixConnector(path=str(self.socket))
        async with (aiohttp.ClientSession(connector=connector) as session,
                    session.request(method, f"http://clgwd{url}", json=body) as resp):
            return resp.status, await resp.json()

    async def status(self) -> dict[str, Any]:
        _, body = await self.request("GET", "/v1/status")
        return dict(body["components"])

    async def command(self, method: str) -> tuple[int, Any]:
        return await self.request("POST", f"/v1/command/{method}", {})

    async def cli(self, *args: str) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", self.ns, PYTHON, "-m", "clgwd", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        return proc.returncode or 0, out.decode()


def gateway_config(tmp: Path, network_yaml: str) -> Path:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "state").mkdir(exist_ok=True)
    path = tmp / "clgwd.yaml"
    path.write_text(
        f"state: {{dir: {tmp / 'state'}}}\n"
        "http: {listen: [{host: 127.0.0.1, port: 8080}]}\n"
        f"control: {{socket: {tmp / 'control.sock'}}}\n"
        "logging: {level: debug}\n"
        f"network:\n  resolv_conf: {tmp / 'resolv.conf'}\n"
        f"{textwrap.indent(network_yaml, '  ')}\n")
    return path


async def start_gateway(procs: Procs, ns: str, tmp: Path, network_yaml: str) -> Gateway:
    """``ip netns exec NS python -m clgwd run``; returns once the control socket answers."""
    config = gateway_config(tmp, network_yaml)
    started = time.monotonic()
    proc = await procs.start(PYTHON, "-m", "clgwd", "run", "-c", str(config), ns=ns,
                             log=tmp / "clgwd.log")
    gw = Gateway(ns, tmp, proc, started)

    async def up() -> bool:
        if proc.returncode is not None:
            raise AssertionError(f"gateway exited {proc.returncode}:\n{gw.log.read_text()}")
        if not gw.socket.exists():
            return False
        try:
            await gw.status()
        except aiohttp.ClientError:
            return False
        return True

    await wait_for(up, 20)
    return gw
