"""pysnmp and aiomqtt stay behind their one module and load only when used."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from clgwd.commands import CommandContext, CommandRouter
from clgwd.config import ClgwdConfig
from clgwd.errors import StartupError
from clgwd.monitor.component import MonitorComponent, MonitorNotRunning
from clgwd.store import Store
from tests.monitor.peers import COMMUNITY, free_udp_port

PACKAGE = Path(__file__).resolve().parents[2] / "clgwd"
OWNERS = {"pysnmp": "monitor/snmp.py", "aiomqtt": "monitor/mqtt.py"}


@pytest.mark.parametrize("library", sorted(OWNERS))
def test_library_imported_in_one_module(library: str) -> None:
    """Only its wrapper module imports the library."""
    pattern = re.compile(rf"^\s*(from|import) {library}\b", re.M)
    users = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                   if pattern.search(p.read_text(encoding="utf-8")))
    assert users == [OWNERS[library]]


def test_daemon_import_does_not_load_them() -> None:
    """Importing the daemon (every component) loads neither library."""
    code = ("import sys, clgwd.daemon; "
            "print(sorted(m for m in ('pysnmp', 'aiomqtt') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "[]"


async def test_failed_reload_restores_the_running_agent(make_config) -> None:  # type: ignore[no-untyped-def]
    """A reload whose listen address cannot be bound raises StartupError; re-applying the
    old config (the daemon's rollback) brings the old agent back."""
    port = free_udp_port()
    old: ClgwdConfig = make_config(
        f"monitor: {{snmp: {{listen: ['127.0.0.1:{port}'], community: {COMMUNITY}}}}}\n")
    bad: ClgwdConfig = make_config(
        f"monitor: {{snmp: {{listen: ['192.0.2.1:{port}'], community: {COMMUNITY}}}}}\n")
    async with Store(old) as store, MonitorComponent(old, store, dict) as monitor:
        assert monitor.agent_bound() == [("127.0.0.1", port)]
        with pytest.raises(StartupError, match=r"monitor\.snmp\.listen"):
            await monitor.apply_config(bad)
        assert monitor.agent_bound() == []
        await monitor.apply_config(old)
        assert monitor.agent_bound() == [("127.0.0.1", port)]


async def test_settings_change_before_the_start_is_refused(make_config) -> None:  # type: ignore[no-untyped-def]
    """The control socket opens before the monitor starts: a monitor.set then is refused
    with a clear message, nothing is saved; once started the same call applies."""
    port = free_udp_port()
    config: ClgwdConfig = make_config(
        f"monitor: {{snmp: {{listen: ['127.0.0.1:{port}'], community: {COMMUNITY}}}}}\n")
    router = CommandRouter()
    ctx = CommandContext("local:cli")
    async with Store(config) as store:
        monitor = MonitorComponent(config, store, dict, commands=router)
        with pytest.raises(MonitorNotRunning, match="starting or stopping"):
            await router.call("monitor.set", {"snmp": {"location": "rack 9"}}, ctx)
        assert await store.settings.get("saved.monitor.snmp") is None
        async with monitor:
            answer = await router.call("monitor.set", {"snmp": {"location": "rack 9"}}, ctx)
        assert answer["snmp"]["location"] == "rack 9"
