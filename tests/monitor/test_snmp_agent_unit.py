"""``SnmpAgent`` on its own (in the test's loop), against net-snmp's tools."""

from __future__ import annotations

from pathlib import Path

import pytest

from clgwd.config.monitor import SnmpUser
from clgwd.config.secret import Secret
from clgwd.monitor import snmp
from tests.monitor.peers import V3_ARGS, V3_AUTH, V3_PRIV, V3_USER, netsnmp

pytestmark = pytest.mark.peers
SYS_NAME = "1.3.6.1.2.1.1.5.0"


async def test_ipv6_v3_and_set_refused(tmp_path: Path) -> None:
    """The agent answers on ::1 too and to v3 authPriv (its requests handled in the
    test's loop, blockbuster on); a SET is answered with an error and changes nothing."""
    agent = snmp.SnmpAgent(["127.0.0.1:0", "[::1]:0"],
                           lambda: [((1, 3, 6, 1, 2, 1, 1, 5, 0), snmp.text("gw"))],
                           community=Secret("unit-ro"), max_repetitions=10, users=[
                               SnmpUser(name=V3_USER, auth_key=Secret(V3_AUTH),
                                        priv_key=Secret(V3_PRIV))])
    await agent.start()
    try:
        (_, v4), (host6, v6) = agent.bound
        assert host6 == "::1"
        code, out, err = await netsnmp(tmp_path, "snmpget", "-v2c", "-c", "unit-ro", "-On",
                                       f"udp6:[::1]:{v6}", SYS_NAME)
        assert code == 0 and 'STRING: "gw"' in out, err
        code, out, err = await netsnmp(tmp_path, "snmpset", "-v2c", "-c", "unit-ro", "-t",
                                       "1", "-r", "0", f"127.0.0.1:{v4}", SYS_NAME, "s", "x")
        assert code != 0 and "Timeout" not in err
        assert "noAccess" in err + out or "notWritable" in err + out
        code, out, _ = await netsnmp(tmp_path, "snmpget", "-v2c", "-c", "unit-ro", "-On",
                                     f"127.0.0.1:{v4}", SYS_NAME)
        assert 'STRING: "gw"' in out
        code, out, err = await netsnmp(tmp_path, "snmpbulkwalk", *V3_ARGS, "-On",
                                       f"127.0.0.1:{v4}", "1.3.6.1")
        assert code == 0 and 'STRING: "gw"' in out, err
        assert agent.auth_failures() == 0
    finally:
        agent.close()


async def test_bind_failure_is_an_oserror(tmp_path: Path) -> None:
    """An address that cannot be bound raises OSError (the component turns it into a
    StartupError naming monitor.snmp.listen)."""
    agent = snmp.SnmpAgent(["192.0.2.1:1161"], list, community=Secret("unit-ro"), users=[],
                           max_repetitions=10)
    with pytest.raises(OSError):
        await agent.start()
    assert agent.bound == []
