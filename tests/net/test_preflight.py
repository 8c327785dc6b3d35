"""Pre-flight against real servers in a peer namespace, and against closed ports."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_program
from tests.net.conftest import PYTHON, Lan, Procs, start_gateway, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.peers]

SERVER = "198.18.0.1"
PREFLIGHT = f"""\
preflight:
  dns_name: cloud.test
  ntp_servers: [{SERVER}]
  cloud_host: {SERVER}
  stun_host: {SERVER}
  stun_ports: [3478, 3490]
  pbx_host: {SERVER}
  pbx_port: 5060
  proxy: {{host: {SERVER}, port: 3128}}
  timeout: 2
"""


async def start_servers(procs: Procs, ns: str, tmp: Path) -> None:
    """dnsmasq (DNS), chronyd (NTP), coturn (STUN), TCP 443/5060 and a CONNECT proxy."""
    for program in ("dnsmasq", "chronyd", "turnserver"):
        require_program(program)
    tmp.mkdir(parents=True, exist_ok=True)
    await procs.start("dnsmasq", "--keep-in-foreground", "--no-daemon", "--port=53",
                      "--no-resolv", "--no-hosts", f"--listen-address={SERVER}",
                      "--bind-interfaces", "--address=/cloud.test/198.18.0.1",
                      f"--pid-file={tmp / 'dnsmasq.pid'}", ns=ns, log=tmp / "dnsmasq.log")
    chrony = tmp / "chrony.conf"
    chrony.write_text(textwrap.dedent(f"""\
        local stratum 8
        allow all
        bindaddress {SERVER}
        port 123
        cmdport 0
        bindcmdaddress /
        driftfile {tmp / 'chrony.drift'}
        pidfile {tmp / 'chrony.pid'}
        """))
    await procs.start("chronyd", "-d", "-x", "-f", str(chrony), ns=ns, log=tmp / "chrony.log")
    await procs.start("turnserver", "-n", "--stun-only", f"--listening-ip={SERVER}",
                      "--listening-port=3478", "--no-tls", "--no-dtls", "--no-cli",
                      "--log-file=stdout", f"--pidfile={tmp / 'turn.pid'}", ns=ns,
                      log=tmp / "turn.log")
    log = tmp / "tcp.log"
    await procs.start(PYTHON, str(Path(__file__).with_name("tcp_peers.py")), SERVER, "3128",
                      "443", "5060", ns=ns, log=log)

    async def ready() -> bool:
        return log.exists() and "ready" in log.read_text()

    await wait_for(ready, 10)


def lines(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f"{c['name']} {c['target']}": c for c in report["checks"]}


async def test_preflight_report(lan: Lan, procs: Procs, tmp_path: Path) -> None:
    """Every check passes against real servers; closed ports fail with a reason; the CLI
    gives the same report locally and through the running daemon."""
    server_ns, gw_ns = lan.add_ns(), lan.add_ns()
    lan.attach(server_ns, address=f"{SERVER}/24")
    lan.attach(gw_ns, address="198.18.0.10/24")
    await start_servers(procs, server_ns, tmp_path / "servers")
    gw = await start_gateway(procs, gw_ns, tmp_path / "gw", PREFLIGHT)
    (gw.dir / "resolv.conf").write_text(f"nameserver {SERVER}\n")

    async def all_up() -> dict[str, Any] | None:
        _, out = await gw.cli("preflight", "--local", "--json", "-c", str(gw.dir / "clgwd.yaml"))
        report = json.loads(out)
        ntp = lines(report)[f"ntp {SERVER}:123"]
        return report if ntp["ok"] else None  # chronyd needs a moment before it serves

    report = await wait_for(all_up, 15, interval=0.5)
    checks = lines(report)
    assert set(checks) == {"dns cloud.test", f"ntp {SERVER}:123", f"cloud {SERVER}:443",
                           f"stun {SERVER}:3478/udp", f"stun {SERVER}:3490/udp",
                           f"sip-tls {SERVER}:5061", f"pbx {SERVER}:5060",
                           f"proxy {SERVER}:3128"}
    passing = {k for k, c in checks.items() if c["ok"]}
    assert set(checks) - passing == {f"stun {SERVER}:3490/udp", f"sip-tls {SERVER}:5061"}
    assert checks["dns cloud.test"]["detail"] == f"cloud.test -> 198.18.0.1 (via {SERVER})"
    assert checks[f"stun {SERVER}:3478/udp"]["detail"].startswith("public address 198.18.0.10:")
    assert checks[f"sip-tls {SERVER}:5061"]["detail"] == "connection refused"
    assert "port closed" in checks[f"stun {SERVER}:3490/udp"]["detail"]
    assert "stratum" in checks[f"ntp {SERVER}:123"]["detail"]
    assert all(0 < c["seconds"] < 2 for c in checks.values())
    assert report["ok"] is False

    code, out = await gw.cli("preflight", "--socket", str(gw.socket))
    assert code == 1, out
    assert "FAIL  sip-tls" in out and "PASS  cloud" in out and "PASS  proxy" in out
