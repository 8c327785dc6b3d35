"""Tunnel benchmark: clgwd vs direct TCP, OpenSSH ``ssh -R`` (aes128-gcm) and websocat.

Everything runs on 127.0.0.1 in one run, side by side, and prints ratios. Topology for
each tunnel system (the "gateway side" is the process that connects to the LAN target):

    load (iperf3 / python) -> cloud-side listener ==tunnel==> gateway side -> target

    clgwd:    LaunchProxy (refcloud process) == websocket ==> GatewayMux (gateway process)
    ssh -R:   sshd's forwarded listener       == ssh      ==> ssh client
    websocat: websocat tcp-l                  == ws://    ==> websocat ws-l
    asyncio relay: relay process ==plain TCP==> relay process (no framing, no
              multiplexing): the floor of any asyncio tunnel with these process hops
    picows floor: the least a picows reverse tunnel must do (``picows_floor.py``: ids
              and masking, no credit, no scheduler): what the stack gives a tunnel

Usage::

    python bench/tunnel_bench.py            # full run, a few seconds per measurement
    python bench/tunnel_bench.py --quick    # shorter runs
    python bench/tunnel_bench.py --event-loop uvloop   # gateway process on uvloop (bench only)
    python bench/tunnel_bench.py --ws websockets  # the gateway on the pure fallback
    TUNNEL_BENCH_TRACE=/tmp/ht python bench/tunnel_bench.py --only clgwd --measure latency

Numbers on a shared 2-vCPU VM are noisy (+-30 % run to run); read ratios, not absolutes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import importlib.util
import json
import logging
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import hoptrace  # bench/ is on the path only from here

HERE = Path(__file__).resolve()
PY = sys.executable
GATEWAY_ID = "gw-bench"
CLK_TCK = os.sysconf("SC_CLK_TCK")
STREAM_WINDOW = int(os.environ.get("TUNNEL_BENCH_STREAM_WINDOW", str(1 << 20)))
"""Both ends' per-stream window (the gateway default is 1 MiB); env so children see it."""


# -- small helpers -----------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_port(port: int, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while True:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
            continue
        w.close()
        return


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def raise_nofile() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


# -- role: LAN targets (echo + stall) -----------------------------------------------------

async def targets_main(echo_port: int, stall_port: int) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(3600)

    raise_nofile()
    s1 = await asyncio.start_server(echo, "127.0.0.1", echo_port, backlog=2048)
    s2 = await asyncio.start_server(stall, "127.0.0.1", stall_port)
    async with s1, s2:
        print("READY", flush=True)
        await asyncio.Event().wait()


# -- role: plain asyncio relay (the floor baseline) ---------------------------------------

class _Pipe(asyncio.Protocol):
    """One side of a relayed TCP connection: bytes in here go out of the peer, with
    pause/resume back-pressure both ways (what any asyncio relay must do at least)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Pipe | None = None
        self.pending: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        peer = self.peer
        if peer is None or peer.transport is None:
            self.pending.append(data)
            return
        peer.transport.write(data)

    def eof_received(self) -> bool:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write_eof()
        return True

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


async def relay_main(mapping: dict[str, int]) -> None:
    """Listen on each key port and relay every connection to the value port: one
    process per hop, plain TCP between hops, no framing, no multiplexing."""
    loop = asyncio.get_running_loop()
    raise_nofile()

    def accepted(next_port: int) -> _Pipe:
        near = _Pipe()

        async def connect() -> None:
            far = _Pipe()
            far.peer, near.peer = near, far
            try:
                await loop.create_connection(lambda: far, "127.0.0.1", next_port)
            except OSError:
                if near.transport is not None:
                    near.transport.abort()
                return
            assert far.transport is not None
            for data in near.pending:
                far.transport.write(data)
            near.pending.clear()

        tasks.add(loop.create_task(connect()))
        return near

    tasks: set[asyncio.Task[None]] = set()
    servers = [await loop.create_server(functools.partial(accepted, int(to)), "127.0.0.1",
                                        int(listen), backlog=2048)
               for listen, to in mapping.items()]
    print("READY", flush=True)
    await asyncio.gather(*(server.serve_forever() for server in servers))


# -- role: clgwd gateway process ------------------------------------------------------------

def gateway_yaml(state: Path, pubkey: str, ports: list[int]) -> str:
    return (
        f"state: {{dir: {state}}}\n"
        f"control: {{socket: {state / 'control.sock'}}}\n"
        "http: {listen: [{host: 127.0.0.1, port: 1}]}\n"
        "tunnel:\n"
        f"  gateway_id: {GATEWAY_ID}\n"
        f"  authority_public_key: {pubkey}\n"
        "  max_streams: 4096\n"
        "  max_open_rate: 10000\n"  # the RSS test opens 1000 streams at once
        f"  stream_window: {STREAM_WINDOW}\n"
        "  targets:\n"
        f"    - {{name: lan, host: 127.0.0.1, ports: {ports}, allow_special: [loopback]}}\n"
        "  tunnels:\n"
        "    - {name: lan, target: lan, max_streams: 4096}\n"
    )


async def gateway_main(url: str, state: Path, pubkey: str, ports: list[int], ws: str) -> None:
    from wslink import gateway_connect, pump_conn

    from clgwd.commands import CommandContext, CommandRouter
    from clgwd.config import parse_config
    from clgwd.store import Store
    from clgwd.tunnel.component import TunnelComponent

    raise_nofile()
    config = parse_config(gateway_yaml(state, pubkey, ports))
    router = CommandRouter()
    async with Store(config) as store, TunnelComponent(config, store, router) as comp, \
            asyncio.TaskGroup() as tg:
        tg.create_task(comp.run())
        await router.call("tunnel.start", {"all": True}, CommandContext("bench"))
        conn, transport = await gateway_connect(url, ws)
        await pump_conn(conn, transport, comp.mux)


# -- role: refcloud process ----------------------------------------------------------------

async def cloud_main(targets: dict[str, int], ws: str) -> None:
    from websockets.asyncio.server import ServerConnection, serve
    from wslink import WS_OPTIONS, picows_serve, pump

    from clgwd.protocol.credit import SessionLimits
    from clgwd.refcloud.tunnels import CloudTunnels, LaunchProxy, TicketAuthority

    raise_nofile()
    authority = TicketAuthority()
    async with asyncio.TaskGroup() as tg:
        tunnels = CloudTunnels(tg, limits=SessionLimits(stream_window=STREAM_WINDOW))

        async def handler(conn: ServerConnection) -> None:
            await pump(conn, tunnels)

        async with contextlib.AsyncExitStack() as stack:
            if ws == "picows":
                server = await stack.enter_async_context(await picows_serve(tg, tunnels))
            else:
                server = await stack.enter_async_context(
                    serve(handler, "127.0.0.1", 0, **WS_OPTIONS))
            proxies = {}
            for name, port in targets.items():
                proxy = LaunchProxy(tunnels, authority, tg, gateway=GATEWAY_ID, tunnel="lan",
                                    host="127.0.0.1", port=port, admin="bench@example.test",
                                    http_errors=False)
                await stack.enter_async_context(proxy)
                proxies[name] = proxy.address[1]
            ws_port = server.sockets[0].getsockname()[1]
            print(json.dumps({"ws_port": ws_port, "pubkey": authority.public_key_b64,
                              "proxies": proxies}), flush=True)
            await tunnels.wait_up()
            print("UP", flush=True)
            await asyncio.Event().wait()


# -- orchestration ---------------------------------------------------------------------------

@dataclass
class System:
    """One way to reach the targets: ports for each target, and the gateway-side pid."""

    name: str
    ports: dict[str, int]
    gateway_pid: int | None
    results: dict[str, Any] = field(default_factory=dict)
    target_pids: dict[str, int] = field(default_factory=dict)
    """Per-target gateway-side pid where each target has its own process (websocat)."""

    def pid_for(self, target: str) -> int | None:
        return self.target_pids.get(target, self.gateway_pid)


class Procs:
    """Child processes started by the bench; all stopped (by pid) at exit."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, args: list[str], **kw: Any) -> subprocess.Popen[str]:
        proc = subprocess.Popen(args, text=True, stdin=subprocess.DEVNULL, **kw)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(3)
            except subprocess.TimeoutExpired:
                proc.kill()


def read_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"{proc.args} exited early")
    return line.strip()


def start_targets(procs: Procs, echo: int, stall: int, iperf: int) -> None:
    procs.start(["iperf3", "-s", "-B", "127.0.0.1", "-p", str(iperf)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # The LAN targets are shared by every system: always the standard loop.
    proc = procs.start([PY, str(HERE), "role-targets", str(echo), str(stall),
                        "--event-loop", "asyncio"], stdout=subprocess.PIPE)
    assert read_line(proc) == "READY"


def start_clgwd(procs: Procs, targets: dict[str, int], work: Path,
                args: argparse.Namespace) -> System:
    cloud = procs.start([PY, str(HERE), "role-cloud", json.dumps(targets),
                         "--event-loop", args.cloud_loop, "--ws", args.ws_cloud],
                        stdout=subprocess.PIPE)
    info = json.loads(read_line(cloud))
    state = work / "gw-state"
    state.mkdir()
    gateway = procs.start([PY, str(HERE), "role-gateway", f"ws://127.0.0.1:{info['ws_port']}/",
                           str(state), info["pubkey"], json.dumps(sorted(targets.values())),
                           "--event-loop", args.event_loop, "--ws", args.ws])
    assert read_line(cloud) == "UP"
    return System("clgwd", info["proxies"], gateway.pid)


def start_ssh(procs: Procs, targets: dict[str, int], work: Path) -> System:
    ssh_dir = work / "ssh"
    ssh_dir.mkdir()
    for key in ("hostkey", "userkey"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(ssh_dir / key)],
                       check=True)
    shutil.copy(ssh_dir / "userkey.pub", ssh_dir / "authorized_keys")
    sshd_port = free_port()
    (ssh_dir / "sshd_config").write_text(
        f"Port {sshd_port}\nListenAddress 127.0.0.1\nHostKey {ssh_dir}/hostkey\n"
        f"PidFile {ssh_dir}/sshd.pid\nAuthorizedKeysFile {ssh_dir}/authorized_keys\n"
        "StrictModes no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nAllowTcpForwarding yes\n"
        "GatewayPorts no\nX11Forwarding no\nPrintMotd no\nLogLevel ERROR\n")
    Path("/run/sshd").mkdir(exist_ok=True)
    procs.start(["/usr/sbin/sshd", "-D", "-e", "-f", str(ssh_dir / "sshd_config")],
                stderr=subprocess.DEVNULL)
    asyncio.run(wait_port(sshd_port))
    forwards, ports = [], {}
    for name, port in targets.items():
        ports[name] = free_port()
        forwards += ["-R", f"127.0.0.1:{ports[name]}:127.0.0.1:{port}"]
    client = procs.start([
        "ssh", "-p", str(sshd_port), "-i", str(ssh_dir / "userkey"), "-c",
        "aes128-gcm@openssh.com", "-o", "StrictHostKeyChecking=no", "-o",
        f"UserKnownHostsFile={ssh_dir}/known_hosts", "-o", "BatchMode=yes", "-o",
        "ExitOnForwardFailure=yes", "-N", *forwards, "root@127.0.0.1"],
        stderr=subprocess.DEVNULL)
    for port in ports.values():
        asyncio.run(wait_port(port))
    return System("ssh -R aes128-gcm", ports, client.pid)


def start_websocat(procs: Procs, targets: dict[str, int]) -> System:
    exe = shutil.which("websocat") or str(Path(PY).parent / "websocat")
    ports, server_pids = {}, {}
    for name, port in targets.items():
        ws_port, ports[name] = free_port(), free_port()
        server = procs.start([exe, "--binary", "-E", f"ws-l:127.0.0.1:{ws_port}",
                              f"tcp:127.0.0.1:{port}"], stderr=subprocess.DEVNULL)
        server_pids[name] = server.pid
        asyncio.run(wait_port(ws_port))
        procs.start([exe, "--binary", "-E", f"tcp-l:127.0.0.1:{ports[name]}",
                     f"ws://127.0.0.1:{ws_port}/"], stderr=subprocess.DEVNULL)
        asyncio.run(wait_port(ports[name]))
    # The bulk/echo server side process is the "gateway" (it connects to the target).
    return System("websocat", ports, server_pids["echo"], target_pids=server_pids)


def start_picows_floor(procs: Procs, targets: dict[str, int]) -> System:
    """The minimal picows reverse tunnel (``bench/picows_floor.py``), same hops as clgwd."""
    ws_port = free_port()
    front = {name: free_port() for name in targets}
    cloud = procs.start([PY, str(HERE), "role-floor-cloud", str(ws_port), json.dumps(
        {str(front[n]): targets[n] for n in targets})], stdout=subprocess.PIPE)
    asyncio.run(wait_port(ws_port))
    gateway = procs.start([PY, str(HERE), "role-floor-gateway", f"ws://127.0.0.1:{ws_port}/"])
    assert read_line(cloud) == "READY"
    return System("picows floor", front, gateway.pid)


def start_relay(procs: Procs, targets: dict[str, int]) -> System:
    """Two asyncio relay processes in a row (cloud side -> gateway side -> target): the
    same process hops as the clgwd path in the simplest Python code, so its figures are
    the floor of any asyncio tunnel on this machine."""
    middle = {name: free_port() for name in targets}
    front = {name: free_port() for name in targets}
    gateway = procs.start([PY, str(HERE), "role-relay", json.dumps(
        {str(middle[n]): targets[n] for n in targets})], stdout=subprocess.PIPE)
    assert read_line(gateway) == "READY"
    cloud = procs.start([PY, str(HERE), "role-relay", json.dumps(
        {str(front[n]): middle[n] for n in targets})], stdout=subprocess.PIPE)
    assert read_line(cloud) == "READY"
    return System("asyncio relay", front, gateway.pid)


# -- measurements -------------------------------------------------------------------------

def iperf(port: int, seconds: float, *, reverse: bool = False,
          parallel: int = 1) -> dict[str, float]:
    args = ["iperf3", "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds), "-J"]
    if reverse:
        args.append("-R")
    if parallel > 1:
        args += ["-P", str(parallel)]
    time.sleep(0.5)  # let the iperf3 server finish the previous test
    out = subprocess.run(args, capture_output=True, text=True, timeout=seconds + 30,
                         check=False)
    data = json.loads(out.stdout)
    if "error" in data:
        raise RuntimeError(data["error"])
    end = data["end"]["sum_received"]
    return {"gbit": end["bits_per_second"] / 1e9, "bytes": float(end["bytes"])}


async def latency(port: int, count: int, max_seconds: float) -> list[float]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    msg = b"x" * 64
    samples = []
    deadline = time.monotonic() + max_seconds
    for _ in range(count):
        t0 = time.perf_counter()
        writer.write(msg)
        await reader.readexactly(64)
        samples.append(time.perf_counter() - t0)
        if time.monotonic() > deadline:
            break
    writer.close()
    return samples


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e6


def measure_bulk(system: System, seconds: float) -> None:
    for label, reverse in (("bulk_fwd", False), ("bulk_rev", True)):
        pid = system.pid_for("iperf")
        cpu0 = cpu_seconds(pid) if pid else 0.0
        result = iperf(system.ports["iperf"], seconds, reverse=reverse)
        cpu = (cpu_seconds(pid) - cpu0) if pid else 0.0
        system.results[label] = result["gbit"]
        if pid:
            system.results[f"{label}_cpu_s_per_gb"] = cpu / (result["bytes"] / 1e9)


def measure_parallel(system: System, seconds: float) -> None:
    for n in (8, 64):
        try:
            system.results[f"p{n}"] = iperf(system.ports["iperf"], seconds, parallel=n)["gbit"]
        except (RuntimeError, json.JSONDecodeError, subprocess.TimeoutExpired) as err:
            system.results[f"p{n}"] = float("nan")
            print(f"  {system.name} -P {n} failed: {err}", file=sys.stderr)


def measure_latency(system: System, seconds: float, count: int) -> None:
    idle = asyncio.run(latency(system.ports["echo"], count, 3.0))
    system.results["lat_p50"] = pct(idle, 0.50)
    system.results["lat_p99"] = pct(idle, 0.99)
    bulk = subprocess.Popen(["iperf3", "-c", "127.0.0.1", "-p", str(system.ports["iperf"]),
                             "-t", str(seconds + 1), "-J"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        time.sleep(0.7)
        loaded_from = time.monotonic_ns()
        loaded = asyncio.run(latency(system.ports["echo"], count, seconds))
    finally:
        out, _ = bulk.communicate()
    system.results["loaded_p50"] = pct(loaded, 0.50)
    system.results["loaded_p99"] = pct(loaded, 0.99)
    with contextlib.suppress(json.JSONDecodeError, KeyError):
        # What the bulk stream kept while sharing the tunnel (whole run, echoes included).
        received = json.loads(out)["end"]["sum_received"]["bits_per_second"]
        system.results["loaded_bulk"] = received / 1e9
    trace = hoptrace.trace_dir()
    if trace is not None and system.name == "clgwd":
        hoptrace.report(trace, loaded_from, sys.stdout)


async def _idle_streams(port: int, n: int, pid: int) -> tuple[float, float]:
    before = rss_mib(pid)
    conns = []
    for i in range(0, n, 100):
        batch = await asyncio.gather(*(asyncio.open_connection("127.0.0.1", port)
                                       for _ in range(min(100, n - i))))
        for _, writer in batch:
            writer.write(b"x")
        for reader, _ in batch:
            await reader.readexactly(1)
        conns += batch
    await asyncio.sleep(0.5)
    during = rss_mib(pid)
    for _, writer in conns:
        writer.close()
    await asyncio.sleep(0.5)
    return before, during


async def _stalled(port: int, pid: int, seconds: float) -> tuple[float, float, int]:
    before = rss_mib(pid)
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    chunk = b"s" * 65536
    pushed = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        writer.write(chunk)
        pushed += len(chunk)
        try:
            async with asyncio.timeout(0.3):
                await writer.drain()
        except TimeoutError:
            break
    await asyncio.sleep(0.5)
    during = rss_mib(pid)
    writer.transport.abort()
    await asyncio.sleep(0.3)
    return before, during, pushed - writer.transport.get_write_buffer_size()


def measure_memory(system: System, idle_streams: int) -> None:
    pid = system.pid_for("echo")
    if pid is None:
        return
    before, during = asyncio.run(_idle_streams(system.ports["echo"], idle_streams, pid))
    system.results["rss_base"] = before
    system.results["rss_idle_streams"] = during
    stall_pid = system.pid_for("stall")
    assert stall_pid is not None
    before, during, accepted = asyncio.run(_stalled(system.ports["stall"], stall_pid, 2.0))
    system.results["rss_stall_base"] = before
    system.results["rss_stalled"] = during
    system.results["stalled_accepted_mib"] = accepted / 2**20


# -- report ---------------------------------------------------------------------------------

ROWS = [
    ("bulk_fwd", "bulk cloud->LAN, 1 stream (Gbit/s)", "{:.2f}"),
    ("bulk_rev", "bulk LAN->cloud, 1 stream (Gbit/s)", "{:.2f}"),
    ("p8", "8 parallel streams (Gbit/s)", "{:.2f}"),
    ("p64", "64 parallel streams (Gbit/s)", "{:.2f}"),
    ("lat_p50", "64 B echo p50 idle (us)", "{:.0f}"),
    ("lat_p99", "64 B echo p99 idle (us)", "{:.0f}"),
    ("loaded_p50", "64 B echo p50 under bulk (us)", "{:.0f}"),
    ("loaded_p99", "64 B echo p99 under bulk (us)", "{:.0f}"),
    ("loaded_bulk", "bulk cloud->LAN beside the echoes (Gbit/s)", "{:.2f}"),
    ("bulk_fwd_cpu_s_per_gb", "gateway CPU s/GB cloud->LAN", "{:.2f}"),
    ("bulk_rev_cpu_s_per_gb", "gateway CPU s/GB LAN->cloud", "{:.2f}"),
    ("rss_base", "gateway RSS before (MiB)", "{:.1f}"),
    ("rss_idle_streams", "gateway RSS, N idle streams (MiB)", "{:.1f}"),
    ("rss_stall_base", "gateway RSS before stalled reader (MiB)", "{:.1f}"),
    ("rss_stalled", "gateway RSS, 1 stalled reader (MiB)", "{:.1f}"),
    ("stalled_accepted_mib", "bytes accepted before back-pressure (MiB)", "{:.1f}"),
]


def report(systems: list[System], idle_streams: int) -> None:
    names = [s.name for s in systems]
    width = max(len(r[1]) for r in ROWS) + 2
    print("\n" + "metric".ljust(width) + "".join(n.rjust(20) for n in names))
    for key, label, fmt in ROWS:
        cells = []
        for s in systems:
            value = s.results.get(key)
            cells.append((fmt.format(value) if value is not None else "-").rjust(20))
        print(label.replace("N idle", f"{idle_streams} idle").ljust(width) + "".join(cells))
    by = {s.name: s.results for s in systems}
    ours, ssh, ws, direct = (by.get("clgwd", {}), by.get("ssh -R aes128-gcm", {}),
                             by.get("websocat", {}), by.get("direct", {}))
    relay, floor = by.get("asyncio relay", {}), by.get("picows floor", {})
    print("\nratios (clgwd / baseline):")

    def ratio(label: str, a: float | None, b: float | None) -> None:
        if a is None or b is None or b == 0:
            print(f"  {label}: n/a")
        else:
            print(f"  {label}: {a / b:.2f}x")

    for key in ("bulk_fwd", "bulk_rev", "p8", "p64"):
        ratio(f"{key} vs websocat (goal >= 1.0)", ours.get(key), ws.get(key))
        ratio(f"{key} vs ssh -R  (goal >= 0.5)", ours.get(key), ssh.get(key))
        ratio(f"{key} vs direct", ours.get(key), direct.get(key))
        ratio(f"{key} vs picows floor (minimal picows tunnel)", ours.get(key), floor.get(key))
    for key in ("bulk_fwd", "bulk_rev"):
        ratio(f"picows floor {key} vs websocat", floor.get(key), ws.get(key))
    for q in ("p50", "p99"):
        base = direct.get(f"lat_{q}")
        if base is None:
            continue

        def added(results: dict[str, Any], q: str = q, base: float = base) -> float | None:
            value = results.get(f"lat_{q}")
            return None if value is None else value - base

        added_ours, added_ssh, added_relay = added(ours), added(ssh), added(relay)
        shown = ", ".join(f"{name} {value:.0f} us" for name, value in (
            ("clgwd", added_ours), ("ssh -R", added_ssh),
            ("asyncio relay (floor of the topology in Python)", added_relay))
            if value is not None)
        print(f"  added latency {q}: {shown}")
        ratio(f"added latency {q} vs ssh -R (goal <= 1.0)", added_ours, added_ssh)
        ratio(f"added latency {q} vs asyncio relay", added_ours, added_relay)
    for s in systems:
        if "loaded_p99" in s.results and s.results.get("lat_p99"):
            print(f"  {s.name}: loaded p99 / idle p99 = "
                  f"{s.results['loaded_p99'] / s.results['lat_p99']:.1f}x (goal <= 3x)")
    for key in ("bulk_fwd_cpu_s_per_gb", "bulk_rev_cpu_s_per_gb"):
        ratio(f"{key} vs ssh -R", ours.get(key), ssh.get(key))


def run(args: argparse.Namespace) -> None:
    raise_nofile()
    seconds = 2.0 if args.quick else 3.0
    procs = Procs()
    work = Path(tempfile.mkdtemp(prefix="tunnel-bench-"))
    try:
        targets = {"echo": free_port(), "stall": free_port(), "iperf": free_port()}
        start_targets(procs, targets["echo"], targets["stall"], targets["iperf"])
        systems = [System("direct", dict(targets), None)]
        systems.append(start_clgwd(procs, targets, work, args))
        if shutil.which("ssh") and Path("/usr/sbin/sshd").exists():
            systems.append(start_ssh(procs, targets, work))
        systems.append(start_websocat(procs, targets))
        systems.append(start_relay(procs, targets))
        if importlib.util.find_spec("picows") is not None:
            systems.append(start_picows_floor(procs, targets))
        only = set(args.only.split(",")) if args.only else None
        for system in systems:
            if only and system.name.split()[0] not in only and system.name != "direct":
                continue
            print(f"measuring {system.name} ...", file=sys.stderr, flush=True)
            parts = {"bulk"} if args.bulk_only else set(args.measure.split(","))
            if "bulk" in parts:
                measure_bulk(system, seconds)
            if "latency" in parts:
                measure_latency(system, seconds, 3000)
            if "parallel" in parts:
                measure_parallel(system, seconds)
            if "memory" in parts and system.gateway_pid is not None:
                measure_memory(system, args.idle_streams)
        print(f"\nloopback, {os.cpu_count()} CPUs, {seconds:.0f} s per measurement, "
              f"event loop: gateway {args.event_loop}, cloud {args.cloud_loop}; "
              f"websocket: {args.ws} (gateway) / {args.ws_cloud} (cloud); "
              f"clgwd stream window {os.environ.get('TUNNEL_BENCH_STREAM_WINDOW', '1048576')} B, "
              "link SO_RCVBUF "
              f"{os.environ.get('TUNNEL_BENCH_RCVBUF', 'autotuned (shipped default)')}; "
              "noisy: +-30 % run to run")
        report(systems, args.idle_streams)
    finally:
        procs.stop()
        shutil.rmtree(work, ignore_errors=True)


def floor_role(side: str, params: list[str]) -> Any:
    """A side of the picows floor (imported here: picows is optional)."""
    import picows_floor

    if side == "cloud":
        return picows_floor.cloud_main(int(params[0]), json.loads(params[1]))
    return picows_floor.gateway_main(params[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", nargs="?", default="run")
    parser.add_argument("params", nargs="*")
    loops = ["asyncio", "uvloop"]
    parser.add_argument("--event-loop", choices=loops, default="asyncio",
                        help="clgwd gateway process; the daemon ships on asyncio (uvloop "
                             "cannot host pyroute2's netlink sockets)")
    parser.add_argument("--cloud-loop", choices=loops, default="asyncio",
                        help="refcloud process")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--ws", choices=("auto", "websockets", "picows"), default="auto",
                        help="websocket library of the gateway (auto: as the shipped "
                             "cloud.websocket_backend, picows when installed)")
    parser.add_argument("--ws-cloud", choices=("auto", "websockets", "picows"),
                        default="auto",
                        help="websocket library of the bench's cloud end, which stands in "
                             "for any cloud (the refcloud's own end is aiohttp); auto: "
                             "picows when installed, the fastest end we have, as the "
                             "baselines run C and Rust on both ends")
    parser.add_argument("--bulk-only", action="store_true")
    parser.add_argument("--only", default="", help="e.g. clgwd,ssh,websocat")
    parser.add_argument("--measure", default="bulk,latency,parallel,memory",
                        help="comma-separated subset, for quicker A/B runs")
    parser.add_argument("--idle-streams", type=int, default=1000)
    parser.add_argument("--stream-window", type=int, default=None,
                        help="per-stream window in bytes for both clgwd ends")
    args = parser.parse_args()
    roles: dict[str, Callable[[], Any]] = {
        "role-targets": lambda: targets_main(int(args.params[0]), int(args.params[1])),
        "role-gateway": lambda: gateway_main(args.params[0], Path(args.params[1]),
                                             args.params[2], json.loads(args.params[3]),
                                             args.ws),
        "role-cloud": lambda: cloud_main(json.loads(args.params[0]), args.ws),
        "role-relay": lambda: relay_main(json.loads(args.params[0])),
        "role-floor-cloud": lambda: floor_role("cloud", args.params),
        "role-floor-gateway": lambda: floor_role("gateway", args.params),
    }
    if args.role == "run":
        from clgwd.link.backends import resolve

        args.ws = resolve(args.ws)
        args.ws_cloud = resolve(args.ws_cloud)
        trace = hoptrace.trace_dir()
        if trace is not None:
            trace.mkdir(parents=True, exist_ok=True)
            for old_log in trace.glob("role-*.log"):
                old_log.unlink()
        if args.stream_window:
            os.environ["TUNNEL_BENCH_STREAM_WINDOW"] = str(args.stream_window)
        run(args)
        return
    trace = hoptrace.trace_dir()
    if trace is not None and args.role in ("role-cloud", "role-gateway"):
        hoptrace.install(args.role, str(trace))
    profile_to = os.environ.get("TUNNEL_BENCH_PROFILE") if args.role != "role-targets" else None
    profiler = None
    if profile_to:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()

    def _exit(*_: object) -> None:
        # Children are throwaway: no orderly shutdown, but keep a profile if asked.
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(f"{profile_to}.{args.role}")
        os._exit(0)

    signal.signal(signal.SIGTERM, _exit)
    logging.basicConfig(level=logging.WARNING,
                        format=f"{args.role} %(levelname)s %(name)s: %(message)s")
    if args.event_loop == "uvloop":
        import uvloop

        uvloop.run(roles[args.role]())
    else:
        asyncio.run(roles[args.role]())



if __name__ == "__main__":
    main()
