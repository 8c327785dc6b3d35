"""The console banner: how a technician at the appliance's screen finds the setup page.

Printed to the journal (and so the tty) whenever the name or addresses change. The
setup-code hint and certificate fingerprint come from the onboarding/TLS part
(``BannerExtras``, wired in ``build_components``); a line it has nothing for says so
instead of showing nothing.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from clgwd.config import ClgwdConfig

_LOGGER = logging.getLogger("clgwd.banner")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class BannerExtras:
    """Filled in by the onboarding/TLS component when it exists."""

    setup_code_hint: str | None = None
    certificate_fingerprint: str | None = None


def _url(scheme: str, host: str, port: int) -> str:
    default = {"http": 80, "https": 443}[scheme]
    return f"{scheme}://{host}" + ("" if port == default else f":{port}") + "/"


def render_banner(hostname: str, addresses: Sequence[ipaddress.IPv4Address
                                                    | ipaddress.IPv6Address],
                  http_port: int, https_port: int | None,
                  extras: BannerExtras | None = None) -> str:
    """The banner text: URL by name and by each IPv4 address, plus the hints."""
    extras = extras or BannerExtras()
    scheme, port = ("https", https_port) if https_port is not None else ("http", http_port)
    lines = ["CloudLink gateway setup",
             f"  Open  {_url(scheme, f'{hostname}.local', port)}"]
    lines += [f"   or   {_url(scheme, str(a), port)}" for a in addresses
              if isinstance(a, ipaddress.IPv4Address)]
    lines.append("  Setup code: " + (extras.setup_code_hint or "not available yet"))
    lines.append("  Certificate fingerprint (SHA-256): "
                 + (extras.certificate_fingerprint or "not available yet"))
    width = max(len(line) for line in lines) + 2
    border = "+" + "-" * width + "+"
    body = [f"| {line:<{width - 1}}|" for line in lines]
    return "\n".join([border, *body, border])


def log_banner(text: str) -> None:
    _LOGGER.info("\n%s", text)


def banner_hook(config: ClgwdConfig, extras: Callable[[], BannerExtras] = BannerExtras,
                ) -> Callable[[str, Sequence[IpAddress]], None]:
    """Log the console banner each time mDNS publishes a name or new addresses.

    ``extras`` is asked at each banner for the setup-code hint and the certificate
    fingerprint; ``build_components`` passes one that asks the HTTP component (a line
    it has nothing for, such as the fingerprint without an HTTPS listener, says "not
    available yet").
    """
    mdns = config.network.mdns

    def _hook(hostname: str, addresses: Sequence[IpAddress]) -> None:
        log_banner(render_banner(hostname, addresses, mdns.http_port, mdns.https_port,
                                 extras()))

    return _hook
