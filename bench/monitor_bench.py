"""Monitoring figures: inventory collection, SNMP walk latency, idle daemon cost.

    .venv/bin/python bench/monitor_bench.py [--walks 100] [--idle 60]

1. Inventory: ``collect_local()`` (psutil) timed over 50 runs (budget 100 ms).
2. SNMP: ``snmpbulkwalk -v2c`` of the clgwd subtree from a running daemon, p50/p99
   over ``--walks`` runs (budget 20 ms p99), beside net-snmp's snmpd answering the
   system group with the same tool in the same run (the baseline; both include
   the tool's process start).
3. Idle: RSS and CPU of the daemon with the SNMP agent, MQTT (a local mosquitto) and
   the inventory on, over ``--idle`` seconds (budget 60 MB, 0.2 % of one core), beside
   a daemon with monitoring off measured over the same seconds (the baseline).
Only 127.0.0.1 is used.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

from clgwd.inventory.collect import collect_local

COMMUNITY = "bench-ro"
TICK = os.sysconf("SC_CLK_TCK")


def free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def pysnmp_walks(target: tuple[str, int], oid: str, walks: int) -> list[float]:
    """Walk times with one in-process pysnmp client (no process start per walk)."""
    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData,
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        bulk_walk_cmd,
    )

    engine = SnmpEngine()
    transport = await UdpTransportTarget.create(target, timeout=2, retries=0)
    out = []
    for _ in range(walks):
        start = time.perf_counter()
        async for error, status, _, _ in bulk_walk_cmd(
                engine, CommunityData(COMMUNITY, mpModel=1), transport, ContextData(), 0, 25,
                ObjectType(ObjectIdentity(oid)), lexicographicMode=False):
            if error or status:
                raise SystemExit(f"walk failed: {error or status}")
        out.append((time.perf_counter() - start) * 1000)
    engine.close_dispatcher()
    return out


def bulk_request(oid: str, repetitions: int) -> bytes:
    """One encoded SNMPv2c GETBULK message (the same bytes are re-sent each time; the
    request id repeats, which neither agent minds)."""
    from pyasn1.codec.ber import encoder
    from pysnmp.proto import api

    v2c = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    pdu = v2c.GetBulkRequestPDU()
    v2c.apiBulkPDU.set_defaults(pdu)
    v2c.apiBulkPDU.set_non_repeaters(pdu, 0)
    v2c.apiBulkPDU.set_max_repetitions(pdu, repetitions)
    v2c.apiBulkPDU.set_varbinds(pdu, [(v2c.ObjectIdentifier(oid), v2c.null)])
    msg = v2c.Message()
    v2c.apiMessage.set_defaults(msg)
    v2c.apiMessage.set_community(msg, COMMUNITY)
    v2c.apiMessage.set_pdu(msg, pdu)
    return bytes(encoder.encode(msg))


async def raw_round_trips(port: int, payload: bytes, count: int) -> list[float]:
    """Round-trip times of one GETBULK with a bare UDP socket: the agent's own latency,
    without an SNMP client library or a process start in the measurement."""
    loop = asyncio.get_running_loop()
    answers: asyncio.Queue[bytes] = asyncio.Queue()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: object) -> None:
            answers.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(
        Client, remote_addr=("127.0.0.1", port))
    out = []
    try:
        for _ in range(count):
            start = time.perf_counter()
            transport.sendto(payload)
            await asyncio.wait_for(answers.get(), 2)
            out.append((time.perf_counter() - start) * 1000)
    finally:
        transport.close()
    return out


async def timed_walks(env: dict[str, str], target: str, oid: str, walks: int) -> list[float]:
    out = []
    for _ in range(walks):
        start = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            "snmpbulkwalk", "-v2c", "-c", COMMUNITY, "-On", target, oid,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL, env=env)
        await proc.wait()
        out.append((time.perf_counter() - start) * 1000)
    return out


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def main(args: argparse.Namespace) -> None:
    collect_local()
    times = []
    for _ in range(50):
        start = time.perf_counter()
        collect_local()
        times.append((time.perf_counter() - start) * 1000)
    print(f"inventory collect_local: median {statistics.median(times):.2f} ms, "
          f"max {max(times):.2f} ms (budget 100 ms)")

    for tool in ("snmpd", "snmpbulkwalk", "mosquitto"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (tests/debian-packages.txt)")
    base = Path(tempfile.mkdtemp(prefix="clgwd-monbench-"))
    env = {**os.environ, "MIBS": "", "SNMP_PERSISTENT_DIR": str(base / "netsnmp")}
    snmpd_port, agent_port, mqtt_port = (free_port(socket.SOCK_DGRAM),
                                         free_port(socket.SOCK_DGRAM),
                                         free_port(socket.SOCK_STREAM))
    (base / "snmpd.conf").write_text(f"agentAddress udp:127.0.0.1:{snmpd_port}\n"
                                     f"rocommunity {COMMUNITY} 127.0.0.1\n")
    (base / "mosquitto.conf").write_text(
        f"persistence false\nuser root\nlistener {mqtt_port} 127.0.0.1\n"
        "allow_anonymous true\n")
    (base / "clgwd.yaml").write_text(
        f"state: {{dir: {base / 'state'}}}\n"
        "http: {listen: [{host: 127.0.0.1, port: 0}], tls_listen: []}\n"
        f"control: {{socket: {base / 'control.sock'}}}\n"
        f"monitor:\n  snmp: {{listen: ['127.0.0.1:{agent_port}'], community: {COMMUNITY}}}\n"
        f"  mqtt: {{url: 'mqtt://127.0.0.1:{mqtt_port}'}}\n"
        f"inventory:\n  platforms: [{{name: snmpd, address: '127.0.0.1:{snmpd_port}', "
        f"community: {COMMUNITY}}}]\n")
    quiet = {"stdout": asyncio.subprocess.DEVNULL, "stderr": asyncio.subprocess.DEVNULL}
    snmpd = await asyncio.create_subprocess_exec(
        "snmpd", "-f", "-Lo", "-C", "-c", str(base / "snmpd.conf"), env=env, **quiet)
    broker = await asyncio.create_subprocess_exec(
        "mosquitto", "-c", str(base / "mosquitto.conf"), **quiet)
    daemon = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clgwd", "run", "--config", str(base / "clgwd.yaml"), **quiet)
    (base / "plain.yaml").write_text(
        f"state: {{dir: {base / 'plain-state'}}}\n"
        "http: {listen: [{host: 127.0.0.1, port: 0}], tls_listen: []}\n"
        f"control: {{socket: {base / 'plain.sock'}}}\n")
    plain = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clgwd", "run", "--config", str(base / "plain.yaml"), **quiet)
    try:
        await asyncio.sleep(12)  # start-up done: the first inventory poll included
        if daemon.returncode is not None:
            sys.exit("the daemon did not start")
        target = f"127.0.0.1:{agent_port}"
        ours = await timed_walks(env, target, "1.3.6.1.4.1.99999.1", args.walks)
        theirs = await timed_walks(env, f"127.0.0.1:{snmpd_port}", "1.3.6.1.2.1.1",
                                   args.walks)
        print(f"snmpbulkwalk clgwd subtree (clgwd agent): p50 {pct(ours, 0.5):.1f} ms, "
              f"p99 {pct(ours, 0.99):.1f} ms (budget 20 ms p99)")
        print(f"snmpbulkwalk system group (net-snmp snmpd, baseline): p50 "
              f"{pct(theirs, 0.5):.1f} ms, p99 {pct(theirs, 0.99):.1f} ms")
        print(f"ratio clgwd/snmpd p99: {pct(ours, 0.99) / pct(theirs, 0.99):.2f}")
        ours = await pysnmp_walks(("127.0.0.1", agent_port), "1.3.6.1.4.1.99999.1", args.walks)
        theirs = await pysnmp_walks(("127.0.0.1", snmpd_port), "1.3.6.1.2.1.1", args.walks)
        print(f"in-process pysnmp client walk, clgwd subtree: p50 {pct(ours, 0.5):.1f} ms, "
              f"p99 {pct(ours, 0.99):.1f} ms; snmpd system group (baseline): p50 "
              f"{pct(theirs, 0.5):.1f} ms, p99 {pct(theirs, 0.99):.1f} ms")
        ours = await raw_round_trips(agent_port, bulk_request("1.3.6.1.4.1.99999.1", 20),
                                     args.walks * 5)
        theirs = await raw_round_trips(snmpd_port, bulk_request("1.3.6.1.2.1.1", 20),
                                       args.walks * 5)
        print(f"one GETBULK (20 repetitions, covers the subtree) on a bare UDP socket: "
              f"clgwd p50 {pct(ours, 0.5):.2f} ms, p99 {pct(ours, 0.99):.2f} ms; snmpd "
              f"system group (baseline) p50 {pct(theirs, 0.5):.2f} ms, p99 "
              f"{pct(theirs, 0.99):.2f} ms")
        await asyncio.sleep(5)  # let the walks' effects settle
        pids = {"monitoring on": daemon.pid, "monitoring off (baseline)": plain.pid}
        cpu0, t0 = {k: cpu_seconds(p) for k, p in pids.items()}, time.monotonic()
        await asyncio.sleep(args.idle)
        cpu1, t1 = {k: cpu_seconds(p) for k, p in pids.items()}, time.monotonic()
        for name, pid in pids.items():
            share = (cpu1[name] - cpu0[name]) / (t1 - t0) * 100
            print(f"idle daemon, {name}, over {t1 - t0:.0f} s: RSS {rss_mb(pid):.1f} MB "
                  f"(budget 60 MB), CPU {share:.3f} % of a core (budget 0.2 %)")
    finally:
        for proc in (daemon, plain, broker, snmpd):
            if proc.returncode is None:
                proc.terminate()
                await proc.wait()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--walks", type=int, default=100)
    parser.add_argument("--idle", type=float, default=60.0)
    asyncio.run(main(parser.parse_args()))
