"""The inventory tests share net-snmp's snmpd fixture with the monitoring tests."""

from tests.monitor.conftest import snmpd

__all__ = ["snmpd"]
