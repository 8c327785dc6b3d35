"""PBX-side guidance: what a technician enters on the PBX for a trunk, per PBX family.

Rendered from the trunk's values; it is guidance (from the vendor documentation as
summarised in the project's research notes, section 3), not something the gateway
checks or configures on the PBX.
"""

from __future__ import annotations

from typing import Any, Final

from clgwd.config import ClgwdConfig
from clgwd.sip.model import TrunkSpec

GATEWAY_ADDRESS: Final = "the gateway's LAN address (Network page)"


def _common(spec: TrunkSpec) -> list[dict[str, str]]:
    return [{"field": "Transport", "value": spec.transport.upper()},
            {"field": "Port", "value": str(spec.effective_port)}]


def guidance(spec: TrunkSpec, config: ClgwdConfig) -> dict[str, Any]:
    """``{"guidance": true, "family", "title", "settings": [{field, value}], "notes"}``."""
    family = spec.pbx_family
    settings: list[dict[str, str]]
    notes: list[str] = []
    user = spec.username or "(the trunk's digest username, if the PBX authenticates)"
    if family == "mivb":
        title = "MiVoice Business: SIP Peer Profile and ARS route"
        settings = [{"field": "SIP Peer Profile name", "value": "CloudLink"},
                    {"field": "Address", "value": GATEWAY_ADDRESS}, *_common(spec),
                    {"field": "ARS route", "value": "a route over this SIP trunk using the "
                                                    "SIP Peer Profile \"CloudLink\""}]
        notes.append("MiVB 9.4 or later with MBG 11.4 or later; only one MBG talks to the "
                     "gateway.")
    elif family == "mx-one":
        title = "MX-ONE: SIP route with profile \"CloudLink Gateway\""
        settings = [{"field": "Profile", "value": "CloudLink Gateway"},
                    {"field": "Remote Proxy IP", "value": GATEWAY_ADDRESS}, *_common(spec),
                    {"field": "CloudLink authentication user", "value": user},
                    {"field": "Trunk individuals", "value": "allocate SIP channels, e.g. 10"}]
        notes.append("MX-ONE 8.0 REST: POST /services/cloudlink-gateway-trunks/v1 with "
                     f"transportProtocol {spec.transport.upper()} and sipPortNumber "
                     f"{spec.effective_port}.")
        notes.append("MX-ONE 7.5 SP0 needs the mml sip_route fix that removes '+' from "
                     "-uristring0.")
    elif family == "mv5000":
        title = "MiVoice 5000: trunk group with subtype CLOUDLINK"
        settings = [{"field": "Subtype", "value": "CLOUDLINK"}, *_common(spec),
                    {"field": "Proxy checking", "value": "IP address"},
                    {"field": "SIP client authentication login", "value": user},
                    {"field": "Dial plan", "value": "Access to CLINK, route to the VASSIST "
                                                    "direction"}]
        if spec.effective_port == 5070:
            notes.append("WARNING: MiVoice 5000 needs a port other than 5070 for this trunk.")
        notes.append("After trunk changes, resync from MiVoice 5000 in the CloudLink Gateway "
                     "menu.")
    elif family == "mvo400":
        title = "MiVoice Office 400: Voice Assist routing"
        settings = [*_common(spec), {"field": "Routing", "value": "PISN users"}]
        notes.append("CSTA service enabled (default port 7001) for the gateway itself.")
    else:
        title = "Generic SIP trunk"
        settings = [{"field": "Peer address", "value": GATEWAY_ADDRESS}, *_common(spec),
                    {"field": "OPTIONS keep-alive", "value": "answer OPTIONS (any final "
                                                             "answer proves reachability)"}]
    if spec.transport == "tls":
        notes.append(f"The PBX's certificate must be valid for {spec.tls_name}.")
    if config.pbx.type != "none" and config.pbx.name and spec.pbx == config.pbx.name:
        notes.append(f"PBX: {config.pbx.name} ({config.pbx.host or 'no address configured'}).")
    return {"guidance": True, "trunk": spec.name, "family": family, "title": title,
            "settings": settings, "notes": notes}
