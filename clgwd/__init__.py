"""clgwd: the on-premises gateway between a PBX on the LAN and the cloud platform."""

__version__ = "0.1.0"
