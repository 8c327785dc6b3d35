"""The appliance's console banner: what tty1 shows above the login prompt.

A technician at the appliance's screen needs three things to onboard it: the page's URL
(by name and by the addresses the ports got), the HTTPS certificate's fingerprint to
check the browser warning against, and the setup code. The appliance has no login for
them (root is locked, there is no SSH), so the screen shows the setup code itself while
no admin password is set: seeing the screen is the physical access the code stands for.
Once the password is set the code is no longer shown.

This module is pure: ``render_issue`` turns the facts into agetty issue text; the facts
are gathered by ``cli_console`` (addresses from ``ip``, the rest from the state dir).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from clgwd.config import ClgwdConfig
from clgwd.net.banner import BannerExtras, render_banner

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class OnboardingFacts:
    """What the state dir says; all None/False before clgwd's first start."""

    setup_code: str | None = None
    password_set: bool = False
    fingerprint: str | None = None
    hostname: str | None = None
    """The name mDNS publishes (persisted after a conflict rename), or None for the config's."""


def setup_code_line(facts: OnboardingFacts) -> str:
    if facts.password_set:
        return "not needed, the admin password is set"
    if facts.setup_code is None:
        return "not available yet (clgwd is starting)"
    return f"{facts.setup_code}  (enter it on the first visit)"


def render_issue(config: ClgwdConfig, addresses: Sequence[IpAddress],
                 facts: OnboardingFacts) -> str:
    """The issue file's text: the daemon's banner with the setup code line filled in."""
    mdns = config.network.mdns
    hostname = facts.hostname or mdns.hostname
    banner = render_banner(hostname, addresses, mdns.http_port, mdns.https_port,
                           BannerExtras(setup_code_hint=setup_code_line(facts),
                                        certificate_fingerprint=facts.fingerprint))
    if not any(isinstance(a, ipaddress.IPv4Address) for a in addresses):
        banner += "\n  No address yet: connect eth0 or eth1 to a LAN with a DHCP server."
    # agetty expands backslash escapes in issue files; none of ours is meant as one.
    return "\n" + banner.replace("\\", "\\\\") + "\n\n"
