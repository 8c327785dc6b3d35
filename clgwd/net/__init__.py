"""Networking: Ethernet ports (netlink, DHCP, DNS), commit-confirm, pre-flight and mDNS.

Third-party network libraries stay behind one module each: ``pyroute2`` only in
``netlink``, ``zeroconf`` only in ``mdns``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from clgwd.commands import CommandRouter
from clgwd.config import ClgwdConfig
from clgwd.net.advertiser import MdnsAdvertiser
from clgwd.net.banner import BannerExtras, log_banner, render_banner
from clgwd.net.commands import NetworkCommands
from clgwd.net.mdns import IpAddress
from clgwd.net.ports import NetworkComponent

__all__ = ["BannerExtras", "MdnsAdvertiser", "NetworkComponent", "banner_hook",
           "register_network_commands"]


def register_network_commands(router: CommandRouter,
                              network: NetworkComponent) -> NetworkCommands:
    """``network.get/apply/confirm/preflight``: the same code for cloud, page and CLI."""
    commands = NetworkCommands(network)
    commands.register(router)
    return commands


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
