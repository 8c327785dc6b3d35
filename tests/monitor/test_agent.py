"""The SNMP agent inside a running daemon, queried with net-snmp's tools."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.daemon.proc import DaemonProcess, run_cli, write_config
from tests.monitor.peers import COMMUNITY, V3_ARGS, free_udp_port, netsnmp, snmp_yaml

pytestmark = pytest.mark.peers
CLGWD = "1.3.6.1.4.1.99999.1"


@pytest.fixture
async def agent(tmp_path: Path) -> AsyncIterator[str]:
    """A daemon with the agent on 127.0.0.1:<free port>; yields ``127.0.0.1:port``."""
    port = free_udp_port()
    daemon = await DaemonProcess.start(write_config(tmp_path, extra=snmp_yaml(
        port, "    max_repetitions: 10\n    location: rack 7\n")))
    try:
        await daemon.wait_for_line("ready")
        yield f"127.0.0.1:{port}"
    finally:
        await daemon.kill()


async def test_v2c_walk_serves_system_group_and_clgwd_subtree(agent: str, tmp_path: Path
                                                              ) -> None:
    """snmpwalk v2c sees sysName/sysLocation and the clgwd scalars by their MIB names."""
    code, out, err = await netsnmp(tmp_path, "snmpwalk", "-v2c", "-c", COMMUNITY, agent,
                                   "1.3.6.1", mibs=True)
    assert code == 0, err
    assert 'SNMPv2-SMI::mib-2.1.6.0 = STRING: "rack 7"' in out or "rack 7" in out
    assert "CLGWD-MIB::clgwdVersion.0 = STRING:" in out
    assert "CLGWD-MIB::clgwdOutboxDepth.0 = Gauge32:" in out
    assert "CLGWD-MIB::clgwdLinkState.0 = STRING: not_configured" in out.replace('"', "")


async def test_v3_authpriv_get(agent: str, tmp_path: Path) -> None:
    """snmpget v3 authPriv (SHA-256/AES) reads sysObjectID: the clgwd MIB root."""
    code, out, err = await netsnmp(tmp_path, "snmpget", *V3_ARGS, "-On", agent,
                                   "1.3.6.1.2.1.1.2.0")
    assert code == 0, err
    assert out.strip() == f".1.3.6.1.2.1.1.2.0 = OID: .{CLGWD}"


async def test_wrong_credentials_refused_and_counted(agent: str, tmp_path: Path) -> None:
    """A wrong community gets no answer, a wrong v3 key an authentication error; both
    are counted in clgwdSnmpAuthFailures."""
    code, _, err = await netsnmp(tmp_path, "snmpget", "-v2c", "-c", "wrong", "-t", "0.5",
                                 "-r", "0", agent, "1.3.6.1.2.1.1.5.0")
    assert code != 0 and "Timeout" in err
    bad = [a if a != "authpass-123" else "authpass-999" for a in V3_ARGS]
    code, _, err = await netsnmp(tmp_path, "snmpget", *bad, "-t", "1", "-r", "0", agent,
                                 "1.3.6.1.2.1.1.5.0")
    assert code != 0 and ("Authentication failure" in err or "incorrect password" in err)
    code, out, err = await netsnmp(tmp_path, "snmpget", "-v2c", "-c", COMMUNITY, "-On",
                                   agent, f"{CLGWD}.1.1.10.0")
    assert code == 0, err
    assert int(out.rsplit(":", 1)[1]) >= 2


async def test_getbulk_is_bounded(agent: str, tmp_path: Path) -> None:
    """GETBULK with max-repetitions 10000 answers at most monitor.snmp.max_repetitions."""
    code, out, err = await netsnmp(tmp_path, "snmpbulkget", "-v2c", "-c", COMMUNITY,
                                   "-Cr10000", "-On", agent, "1.3.6.1")
    assert code == 0, err
    assert 1 <= len(out.strip().splitlines()) <= 10


async def test_unknown_oid_is_no_such_object(agent: str, tmp_path: Path) -> None:
    """A GET for an OID the agent does not serve answers noSuchObject."""
    code, out, _ = await netsnmp(tmp_path, "snmpget", "-v2c", "-c", COMMUNITY, "-On", agent,
                                 "1.3.6.1.2.1.2.1.0")
    assert code == 0
    assert "No Such Object" in out


async def test_bulkwalk_v3_covers_the_subtree(agent: str, tmp_path: Path) -> None:
    """snmpbulkwalk v3 over the clgwd subtree returns the eleven general scalars."""
    code, out, err = await netsnmp(tmp_path, "snmpbulkwalk", *V3_ARGS, "-On", agent,
                                   f"{CLGWD}.1.1")
    assert code == 0, err
    values = [line for line in out.splitlines() if "No more variables" not in line]
    assert len(values) == 11


async def test_mib_loads_in_snmptranslate(tmp_path: Path) -> None:
    """net-snmp's parser loads mibs/CLGWD-MIB.txt and resolves names to the OIDs served."""
    code, out, err = await netsnmp(tmp_path, "snmptranslate", "-On",
                                   "CLGWD-MIB::clgwdTrunkRtt", mibs=True)
    assert code == 0, err
    assert out.strip() == f".{CLGWD}.1.2.1.4"
    assert "Cannot" not in err and "Unlinked" not in err
    code, out, err = await netsnmp(tmp_path, "snmptranslate", "-On",
                                   "CLGWD-MIB::clgwdAlertRaised", mibs=True)
    assert (code, out.strip()) == (0, f".{CLGWD}.2.0.1"), err


async def test_status_shows_secrets_as_set_only(agent: str, tmp_path: Path) -> None:
    """`clgwd status --json` says the community is set and names the v3 user, never a
    secret's value."""
    config = tmp_path / "clgwd.yaml"
    code, out, err = await run_cli("status", "--json", "--config", str(config))
    assert code == 0, err
    details = json.loads(out)["components"]["monitor"]["details"]
    assert (details["snmp_community"], details["snmp_users"]) == ("set", ["clgwdv3"])
    assert details["mqtt_password"] == "unset"
    for secret in (COMMUNITY, "authpass-123", "privpass-123"):
        assert secret not in out
