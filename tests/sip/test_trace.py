"""trace.calls against real programs: tcpdump captures sipp's SIP OPTIONS on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import stat
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from clgwd.commands import CommandContext, CommandRouter
from clgwd.config import ClgwdConfig
from clgwd.sip import trace as trace_mod
from clgwd.sip.trace import (
    CallTrace,
    InvalidTraceParams,
    TcpdumpMissing,
    TraceFailed,
    TraceRunning,
    duration_param,
    trace_dir,
)
from clgwd.store import Action, EventFilter, Store
from tests.conftest import require_program, require_root

WEB = CommandContext(actor="local:web:admin")
pytestmark = [pytest.mark.timeout(60)]

UAC_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="options-ping">
  <send retrans="500"><![CDATA[
      OPTIONS sip:[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      Max-Forwards: 70
      From: <sip:probe@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: 1 OPTIONS
      Contact: <sip:probe@[local_ip]:[local_port];transport=[transport]>
      Content-Length: 0

    ]]></send>
  <recv response="200" rtd="true"/>
</scenario>
"""

UAS_XML = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="options-uas">
  <recv request="OPTIONS" crlf="true"/>
  <send><![CDATA[
      SIP/2.0 200 OK
      [last_Via:]
      [last_From:]
      [last_To:];tag=[pid]SIPpTag01[call_number]
      [last_Call-ID:]
      [last_CSeq:]
      Content-Length: 0

    ]]></send>
</scenario>
"""


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _sip_config(make_config: Callable[..., ClgwdConfig], port: int, **trace: Any) -> ClgwdConfig:
    extra = ", ".join(f"{k}: {v}" for k, v in {"interfaces": "[lo]", **trace}.items())
    return make_config(f"sip: {{udp_ports: [{port}], tcp_ports: [{port}], tls_ports: [],"
                       f" trace: {{{extra}}}}}\n")


@contextlib.asynccontextmanager
async def _tracer(config: ClgwdConfig, **kwargs: Any
                  ) -> AsyncIterator[tuple[CommandRouter, Store]]:
    """The sip part alone, reached through the router as every front door reaches it."""
    router = CommandRouter()
    async with Store(config) as store, CallTrace(config, store, router, **kwargs):
        yield router, store


async def _sipp_options(tmp_path: Path, port: int, count: int) -> None:
    """A sipp UAS answers ``count`` OPTIONS that a sipp UAC sends it, over UDP."""
    sipp = require_program("sipp")
    (tmp_path / "uac.xml").write_text(UAC_XML)
    (tmp_path / "uas.xml").write_text(UAS_XML)
    common = ("-t", "u1", "-i", "127.0.0.1", "-m", str(count), "-nostdin")
    uas = await asyncio.create_subprocess_exec(
        sipp, "-sf", "uas.xml", "-p", str(port), *common, cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        await asyncio.sleep(0.3)  # the UAS binds its port
        uac = await asyncio.create_subprocess_exec(
            sipp, "-sf", "uac.xml", "-p", str(_free_udp_port()), "-r", "50",
            "-timeout", "10s", "-timeout_error", *common, f"127.0.0.1:{port}",
            cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        assert await asyncio.wait_for(uac.wait(), 20) == 0, "sipp UAC did not get 5 x 200 OK"
        await asyncio.wait_for(uas.wait(), 10)
    finally:
        if uas.returncode is None:
            uas.kill()
            await uas.wait()


async def _read_back(path: Path) -> str:
    """tcpdump -r -A: also proves the file is a valid pcap."""
    proc = await asyncio.create_subprocess_exec(
        require_program("tcpdump"), "-r", str(path), "-n", "-A",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert b"truncated" not in err, err.decode()
    return out.decode(errors="replace")


@pytest.mark.peers
async def test_trace_captures_the_sip_options_sipp_sends(
        make_config: Callable[..., ClgwdConfig], tmp_path: Path) -> None:
    """Start on lo with the test's SIP port, 5 OPTIONS with sipp, stop: the pcap (0600)
    holds exactly those 5 OPTIONS and their 200 OK; status, metadata and history agree."""
    require_root()
    require_program("tcpdump")
    port = _free_udp_port()
    config = _sip_config(make_config, port)
    async with _tracer(config) as (router, store):
        started = await router.call("trace.calls", {"duration_minutes": 1}, WEB)
        assert started["running"] is True
        current = started["current"]
        assert current["interfaces"] == ["lo"] and current["actor"] == "local:web:admin"
        assert 59 <= current["ends_at"] - current["started_at"] <= 61
        assert f"port {port}" in current["filter"]
        await _sipp_options(tmp_path, port, 5)
        stopped = await router.call("trace.stop", {}, WEB)
        assert stopped["stopped"] is True and stopped["running"] is False
        [capture] = stopped["captures"]
        assert capture["stop_reason"] == "stopped by local:web:admin"
        assert capture["packets"] >= 10
        [entry] = capture["files"]
        path = trace_dir(config) / entry["name"]
        assert entry["bytes"] == path.stat().st_size > 0
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        text = await _read_back(path)
        assert text.count(f"OPTIONS sip:127.0.0.1:{port} SIP/2.0") == 5
        assert text.count("SIP/2.0 200 OK") == 5
        meta = json.loads((trace_dir(config) / f"trace-{capture['id']}.json").read_text())
        assert meta["files"][0]["packets"] == capture["packets"]
        events = await store.history.query(EventFilter(asset="Call trace"))
        assert sorted(e.action for e in events) == [Action.START, Action.STOP]
        assert all(e.subject == capture["id"] for e in events)


@pytest.mark.peers
async def test_one_trace_at_a_time_and_the_timer_ends_it(
        make_config: Callable[..., ClgwdConfig], monkeypatch: pytest.MonkeyPatch) -> None:
    """A second start is refused saying when the running one ends; the running one
    ends by itself at its time (a minute is 0.5 s here)."""
    require_root()
    require_program("tcpdump")
    monkeypatch.setattr(trace_mod, "SECONDS_PER_MINUTE", 0.5)
    async with _tracer(_sip_config(make_config, _free_udp_port())) as (router, _):
        first = await router.call("trace.calls", {"duration_minutes": 2}, WEB)
        with pytest.raises(TraceRunning, match="already running until .* UTC") as info:
            await router.call("trace.calls", {"duration_minutes": 1}, WEB)
        assert info.value.http_status == 409
        assert f"ends_at {first['current']['ends_at']:.0f}" in info.value.message
        deadline = time.monotonic() + 10
        while (status := await router.call("trace.status", {}, WEB))["running"]:
            assert time.monotonic() < deadline, "the trace did not end at its time"
            await asyncio.sleep(0.1)
        assert status["captures"][0]["stop_reason"] == "duration"
        assert 0.9 <= status["captures"][0]["ended_at"] - first["current"]["started_at"] < 5
        again = await router.call("trace.calls", {"duration_minutes": 1}, WEB)
        assert again["running"] is True


@pytest.mark.peers
async def test_size_cap_stops_the_trace_with_a_valid_file(
        make_config: Callable[..., ClgwdConfig]) -> None:
    """1 MiB cap, ~2 MiB of datagrams to the SIP port: the trace stops by itself, the file
    stays within the cap and tcpdump reads it back without a truncated packet."""
    require_root()
    require_program("tcpdump")
    port = _free_udp_port()
    config = _sip_config(make_config, port, max_file_mb=1)
    async with _tracer(config) as (router, _):
        await router.call("trace.calls", {"duration_minutes": 5}, WEB)
        payload = b"OPTIONS sip:cap@127.0.0.1 SIP/2.0\r\n" + b"X" * 1200

        def blast() -> None:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                for _ in range(1800):
                    sock.sendto(payload, ("127.0.0.1", port))
                    time.sleep(0.0005)

        await asyncio.to_thread(blast)
        deadline = time.monotonic() + 15
        while (status := await router.call("trace.status", {}, WEB))["running"]:
            assert time.monotonic() < deadline, "the size cap did not stop the trace"
            await asyncio.sleep(0.1)
        capture = status["captures"][0]
        assert capture["stop_reason"] == "size limit of 1 MiB reached on lo"
        path = trace_dir(config) / capture["files"][0]["name"]
        assert 1024 * 1024 - 1500 < path.stat().st_size <= 1024 * 1024
        assert (await _read_back(path)).count("OPTIONS sip:cap@127.0.0.1") == capture["packets"]


@pytest.mark.peers
async def test_only_the_newest_captures_are_kept(
        make_config: Callable[..., ClgwdConfig]) -> None:
    require_root()
    require_program("tcpdump")
    config = _sip_config(make_config, _free_udp_port(), keep=2)
    async with _tracer(config) as (router, _):
        ids = []
        for _ in range(3):
            ids.append((await router.call("trace.calls", {}, WEB))["current"]["id"])
            await router.call("trace.stop", {}, WEB)
        status = await router.call("trace.status", {}, WEB)
    assert [c["id"] for c in status["captures"]] == [ids[2], ids[1]]
    names = sorted(p.name for p in trace_dir(config).iterdir())
    assert names == sorted([f"trace-{i}-lo.pcap" for i in ids[1:]]
                           + [f"trace-{i}.json" for i in ids[1:]])


@pytest.mark.peers
async def test_shutdown_ends_a_running_trace_and_keeps_its_file(
        make_config: Callable[..., ClgwdConfig]) -> None:
    require_root()
    require_program("tcpdump")
    config = _sip_config(make_config, _free_udp_port())
    async with _tracer(config) as (router, _):
        await router.call("trace.calls", {"duration_minutes": 30}, WEB)
    async with _tracer(config) as (router, _):
        status = await router.call("trace.status", {}, WEB)
    assert status["running"] is False
    assert status["captures"][0]["stop_reason"] == "gateway shutting down"
    assert not await _tcpdump_children()


async def _tcpdump_children() -> list[str]:
    """tcpdump processes whose parent is this test process."""
    def scan() -> list[str]:
        found = []
        for pid in filter(str.isdigit, os.listdir("/proc")):
            with contextlib.suppress(OSError):
                fields = Path(f"/proc/{pid}/stat").read_text().split()
                if fields[1] == "(tcpdump)" and int(fields[3]) == os.getpid():
                    found.append(pid)
        return found
    return await asyncio.to_thread(scan)


async def test_missing_tcpdump_is_a_clear_409(make_config: Callable[..., ClgwdConfig]) -> None:
    async with _tracer(make_config(), tcpdump="clgwd-test-no-such-tcpdump") as (router, _):
        with pytest.raises(TcpdumpMissing, match="tcpdump is not installed") as info:
            await router.call("trace.calls", {"duration_minutes": 1}, WEB)
        assert info.value.http_status == 409
        assert (await router.call("trace.status", {}, WEB))["running"] is False


@pytest.mark.peers
async def test_tcpdump_refusing_to_start_is_reported_and_leaves_no_file(
        make_config: Callable[..., ClgwdConfig]) -> None:
    require_program("tcpdump")
    config = make_config("sip: {trace: {interfaces: [clgwdnosuch0]}}\n")
    async with _tracer(config) as (router, _):
        with pytest.raises(TraceFailed, match="tcpdump on clgwdnosuch0 could not capture"):
            await router.call("trace.calls", {"duration_minutes": 1}, WEB)
        assert (await router.call("trace.status", {}, WEB))["running"] is False
    assert list(trace_dir(config).iterdir()) == []


@pytest.mark.parametrize(("params", "match"), [
    ({"duration_minutes": 0}, "1-60"), ({"duration_minutes": 61}, "1-60"),
    ({"duration_minutes": True}, "whole number"), ({"duration_minutes": "5"}, "whole number"),
    ({"duration_minutes": 5, "interface": "eth0"}, "unknown parameter"),
])
def test_bad_durations_are_refused_naming_the_field(params: dict[str, Any], match: str) -> None:
    with pytest.raises(InvalidTraceParams, match=match) as info:
        duration_param(params)
    assert info.value.http_status == 422
    assert duration_param({}) == 10
