"""The appliance profile's lock-out check (``clgwd check-config --appliance``).

On the appliance image nothing but clgwd gives the Ethernet ports an address, and the
onboarding page is the technician's only way in (no SSH, no password on the console).
A config that manages no port, or serves the page on no LAN address, is valid YAML for
a developer's machine but locks the technician out of an appliance: the image refuses it
before the daemon starts (and before an edited file is put in place).
"""

from __future__ import annotations

import ipaddress

from clgwd.config.models import ClgwdConfig


def lockout_problems(config: ClgwdConfig) -> list[str]:
    """Why this config would leave an appliance unreachable; empty when it would not."""
    problems = []
    if not config.network.ports:
        problems.append(
            "network.ports: no Ethernet port is managed; on the appliance nothing else "
            "gives a port an address, so the onboarding page could not be reached. "
            "Keep at least one port (for example `- name: eth0` with mode dhcp).")
    lan = [listen for listen in config.http.tls_listen
           if not ipaddress.ip_address(listen.host).is_loopback]
    if not lan:
        where = ("is empty" if not config.http.tls_listen
                 else "lists only loopback addresses")
        problems.append(
            f"http.tls_listen {where}, so the onboarding page is not served on the LAN "
            "and the technician could not reach it. Keep `- host: 0.0.0.0` (port 443).")
    return problems
