"""Networking: Ethernet ports (netlink, DHCP, DNS), commit-confirm, pre-flight and mDNS.

The component is ``clgwd.net.component.NetworkComponent`` (it registers the
``network.*`` commands); the mDNS advertiser is ``clgwd.net.advertiser``. Third-party
network libraries stay behind one module each: ``pyroute2`` only in ``netlink``,
``zeroconf`` only in ``mdns``. This package module imports nothing, so loading one
helper (the pre-flight checks for the CLI) does not load pyroute2 or zeroconf.
"""
