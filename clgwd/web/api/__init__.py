"""The JSON API of the onboarding page, ``/api/v1/...``: one module per page section.

| module | section |
|---|---|
| ``session`` | Login, first-time setup, password change and logout; error messages. |
| ``gateway`` | Gateway information (site) and the Ethernet ports. |
| ``cloud`` | The cloud link: state, enrollment and the HTTP proxy. |
| ``pbx`` | PBX settings and user sync. |
| ``voice`` | The Voice Gateway step: SIP trunks. |
| ``overview`` | Overview, deployment summary, tunnels, inventory. |
| ``events`` | Event history (JSON and CSV). |
| ``advanced`` | Update schedule, support bundle, call trace, reboot, reset. |
| ``monitoring`` | Advanced page: SNMP agent, MQTT, inventory schedule and LAN platforms. |

``common`` holds what they share (``WebServices``, ``Route``, body parsing, the router
call). A new section is one module with its handlers and a ``ROUTES`` tuple, plus one
entry below.
"""

from __future__ import annotations

from typing import Final

from clgwd.web.api import (
    advanced,
    cloud,
    events,
    gateway,
    monitoring,
    overview,
    pbx,
    session,
    voice,
)
from clgwd.web.api.common import SERVICES, Route, WebServices

__all__ = ["ROUTES", "SERVICES", "Route", "WebServices"]

ROUTES: Final = (
    *session.ROUTES,
    *gateway.ROUTES,
    *cloud.ROUTES,
    *pbx.ROUTES,
    *voice.ROUTES,
    *overview.ROUTES,
    *events.ROUTES,
    *advanced.ROUTES,
    *monitoring.ROUTES,
)
