"""The appliance's console banner: what tty1 shows above the login prompt.

A technician at the appliance's screen needs three things to onboard it: the page's URL
(by name and by the addresses the ports got), the HTTPS certificate's fingerprint to
check the browser warning against, and the setup code. The appliance has no login for
them (root is locked, there is no SSH), so the screen shows the setup code itself while
no admin password is set: seeing the screen is the physical access the code stands for.
Once the password is set the code is no longer shown.

The same facts as the daemon's journal banner (``clgwd.net.banner``), laid out for an
80-column console: the 95-character fingerprint is split over two lines. This module is
pure: the facts are gathered by ``clgwd.cli.console`` (addresses from ``ip``, the rest from
the state dir), which must start fast, so nothing here imports the daemon's parts.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from clgwd.config import ClgwdConfig

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


def fingerprint_lines(fingerprint: str | None) -> list[str]:
    """``AA:BB:...`` (32 bytes) as two lines of 16 bytes, to fit 80 columns."""
    if not fingerprint:
        return ["  Certificate fingerprint (SHA-256): not available yet"]
    parts = fingerprint.split(":")
    half = (len(parts) + 1) // 2
    return ["  Certificate fingerprint (SHA-256):",
            "    " + ":".join(parts[:half]), "    " + ":".join(parts[half:])]


def render_issue(config: ClgwdConfig, addresses: Sequence[IpAddress],
                 facts: OnboardingFacts) -> str:
    """The issue file's text: URL by name and by each IPv4 address, code, fingerprint."""
    mdns = config.network.mdns
    hostname = facts.hostname or mdns.hostname
    scheme, port = ("https", mdns.https_port) if mdns.https_port is not None \
        else ("http", mdns.http_port)
    suffix = "" if port == {"http": 80, "https": 443}[scheme] else f":{port}"
    lines = ["CloudLink gateway setup", f"  Open  {scheme}://{hostname}.local{suffix}/"]
    ipv4 = [a for a in addresses if isinstance(a, ipaddress.IPv4Address)]
    lines += [f"   or   {scheme}://{address}{suffix}/" for address in ipv4]
    if not ipv4:
        lines.append("  No address yet: connect eth0 or eth1 to a LAN with a DHCP server.")
    lines.append("  Setup code: " + setup_code_line(facts))
    lines += fingerprint_lines(facts.fingerprint)
    # agetty expands backslash escapes in issue files; none of ours is meant as one.
    return "\n" + "\n".join(lines).replace("\\", "\\\\") + "\n\n"
